// Package start runs a replica of a rein controller: the order of its life
// and its one exit path. What it runs is described by groups (Group): the
// factories whose controllers fail over together behind one Lease (or one
// set of shards), with the hooks of their leader. Most programs have one:
//
//	start.Run(ctx, opts, start.Group{LeaseName: "my-controller", Factories: []start.Starter{factory}})
//
// Every replica, leader or not:
//
//  1. binds /metrics, /healthz and /readyz, pprof when asked, and the
//     webhook server's address when Options.Webhook is set (an address in
//     use fails at once); the webhook server answers from then on, leader
//     or not;
//  2. starts its informers and waits until every cache has synced and every
//     key is queued, saying every few seconds what it still waits for (an
//     unreachable apiserver or a missing CRD keeps it unready, never
//     silently); /readyz turns green;
//  3. campaigns for its Lease (pkg/leader: a watch, not a poll).
//
// The winner starts the workers of its factories and the OnLeader hooks
// under the term's context. Its queues already hold every key, so work
// starts at once, without a relist. Every write of its handlers passes the
// lease's fence: none leaves the process once the last successful renew is
// older than the renew deadline.
//
// Shutdown order, each step for a reason:
//
//  1. stop taking keys (workers' context ends);
//  2. let running handlers and hooks finish, at most DrainGrace: the fence
//     stays open and the lease renewed meanwhile, so their writes land;
//  3. release the lease, with the resourceVersion of this replica's own
//     last write as a precondition, so a standby takes over at once and a
//     deposed replica can never blank a new holder's lease;
//  4. stop the webhook server (it answered admission and conversion until
//     the lease was released; its validators may read the caches), then
//     the caches, then the probes.
//
// A lease lost without being asked (renews failed past the renew deadline)
// stops the workers at once and ends the replica with ErrLeaseLost, or with
// ReturnToStandby sends it back to campaigning with warm caches.
//
// # Reaching the apiserver
//
// Options.LoadConfig loads the rest.Config the way kubectl does, with
// client-go's clientcmd deferred loading rules, and sets Options.Config.
// The first source found wins: --kubeconfig (which must exist), then the
// files of $KUBECONFIG (merged; missing ones skipped), then ~/.kube/config,
// then the in-cluster configuration of the pod's service account. Note the
// order of the last two, kubectl's: a ~/.kube/config inside a container
// image would win over the service account, so do not ship one. A
// kubeconfig is used with its current context. BindFlags binds
// --kubeconfig; where the flag set already has one (controller-runtime
// defines it on flag.CommandLine), LoadConfig reads that one. A program may
// instead set Options.Config itself, as before.
//
// # Where the Lease lives
//
// The lease namespace is, the first that applies:
//
//  1. --leader-elect-resource-namespace, or Options.LeaseNamespace set by
//     the program;
//  2. in a pod (NewOptions): the service account's namespace file, else
//     POD_NAMESPACE;
//  3. the namespace of the kubeconfig context LoadConfig loaded;
//  4. "default" (DefaultLeaseNamespace), for instance with a context that
//     has none, or an Options.Config set without LoadConfig.
//
// The flag and the pod's namespace are both read before the replica
// starts, so a flag overrides the pod's namespace. A replica logs once, as
// it starts, which namespace it chose and why, e.g.
//
//	lease namespace "default" (kubeconfig context "kind-x" has none; set --leader-elect-resource-namespace to change)
//
// Only an empty namespace is defaulted: one that is set but invalid is
// still an error naming the flag. Replicas that should elect one leader
// must agree on the namespace: running one on a workstation next to a
// deployment only competes with it when both name the same namespace.
//
// # Addresses
//
// NewOptions serves /metrics on 127.0.0.1:8080 and the probes on
// 127.0.0.1:8081: loopback, so that a replica run on a workstation exposes
// nothing to its network. A replica in a pod must listen where the kubelet
// (probes) and Prometheus (scrapes) reach it: pass
// --metrics-bind-address=:8080 --health-probe-bind-address=:8081, as
// samples/vmcontroller/deploy/deployment.yaml does. A replica logs the
// addresses it serves when it starts.
//
// # Metrics
//
// /metrics serves Options.Registry (New makes one with the Go and process
// collectors when it is nil), on which New registers the metrics of every
// factory (controller-runtime's reconcile and workqueue metrics, rein's
// handler and cache metrics), of each Lease's elector
// (leader_election_master_status, rein_leader_election_*), of the webhook
// server, and the process's (rest_client_requests_total,
// rein_fence_refusals_total). docs/guide/08-production.md lists them.
//
// # Health and readiness
//
// /healthz (liveness: the kubelet restarts a replica that fails it) fails
// only when restarting is the cure: a leader whose renew loop is stuck (it
// believes it leads but has not renewed for longer than the lease
// duration). An unreachable apiserver does not fail it: a restart would not
// bring the apiserver back, every replica would restart at once, and each
// would throw away the warm caches that make its takeover fast once the
// apiserver returns.
//
// /readyz (readiness) is 200 when every group's caches have synced and
// every group's elector can see its Lease. A standby whose lists, watches
// or attempts to take the Lease have all failed for longer than the lease
// duration answers 503 with the last error (e.g. "cannot see lease
// default/x for 46s: ... connection refused"): it could not take over from
// a dead leader, so it should not count as a ready standby (a rollout waits
// for it). A leader's sight is its renews: its fence and /healthz cover it.
// Metrics and /healthz and /readyz may share an address, unless /metrics
// is secure.
//
// Both are made of named checks, as Kubernetes' components' are: /healthz
// of ping and lease, /readyz of ping, caches, lease and webhook (lease
// with an election, webhook with a webhook server), then the program's
// own (Options.HealthChecks, ReadyChecks), by name. A failing check makes
// the endpoint 503 and lists every check, "[+]name ok" or "[-]name
// failed: error"; ?verbose lists them when all pass too:
//
//	[+]ping ok
//	[+]caches ok
//	[+]lease ok
//	[-]database failed: dial tcp 10.0.0.7:5432: connection refused
//	readyz check failed
//
// # Sharded groups
//
// A group with Shards > 0 (--shards, bound by Group.BindFlags) runs active-active
// (pkg/shard): every replica joins the group with a member Lease named
// after the group's LeaseName, and runs workers from the moment its caches
// have synced; a worker takes a key only while this replica holds the
// key's shard, and the handler's context ends when the shard moves. Every
// write of the group's factories passes the shard's fence (a write outside
// any shard's context, an Event say, passes the member's). On SIGTERM the
// replica hands each shard on once its handlers have returned (DrainGrace
// at most), deletes its member Lease and exits ExitOK. A replica whose
// membership ended (marked dead after a pause or a partition) does not
// exit: its shards stop at once and it joins again as a new member. A
// sharded group takes no OnLeader hooks and no ServerSideFencing (the
// policy checks one Lease); a single-leader group beside it in the same
// replica can run both. /readyz says which shards the replica holds, and
// /metrics adds rein_shard_held, rein_shard_count, rein_shard_moves_total,
// rein_shard_unowned_seconds and rein_shard_keys.
//
// A factory built with framework.Options.PartitionShards equal to the
// group's Shards has partitioned caches: its controllers' kinds are listed
// and watched per held shard (the apiserver's ShardedListAndWatch), a
// shard's objects are listed before its handlers run and dropped once it
// has moved, and a key's shard is its object's UID's (docs/sharding.md,
// "Partitioned caches"); rein_shard_keys counts each key in that shard.
// The flag --partition-caches (Group.BindFlags) turns it on: pass
// Group.PartitionShards() to the factories' framework.Options.
// --partition-caches=warm-next also caches the shards a replica would
// take over first, so that a takeover checks them instead of listing
// them.
//
// # RBAC
//
// What a replica may do is what its roles grant, and a missing rule is the
// most common failure of a first deploy: a 403, after the rollout. rein
// knows what a replica will touch from the code that runs, since every
// piece registers what it needs as it is set up: each cache (list and
// watch of its kind, in its namespaces; metadata-only and unstructured
// caches need the same), each controller (get, for the live read before a
// finalizer write, and update and patch, the writes of its handler API on
// the handler's object; patch only for metadata-only objects), status
// helpers (update and patch of <plural>/status), OnRemove handlers (update
// of <plural>/finalizers), apply sets (create, patch, delete), event
// recorders (create and patch of core Events), the webhook certificate's
// Secret and the CA injection (by name), and this package's Leases (by
// name for a single leader, every Lease of the namespace for shards).
// What cannot be known before handlers run, a typed client's Create,
// Delete or direct UpdateStatus in a handler, or a client rein does not
// make, is declared with Options.RBACRules.
//
// --print-rbac (Options.PrintRBAC) prints them as a ClusterRole, a Role
// per namespace and their bindings to --rbac-service-account (default: the
// lease name in the lease namespace), and exits ExitOK; it reads no
// kubeconfig and reaches no cluster, so a build step can generate the
// deployment's RBAC (samples/vmcontroller's make generate does). Rules are
// merged and sorted, and one a broader one grants is left out: the same
// program and flags print the same YAML.
//
// At start (Options.CheckRBAC, --rbac-check, on by default), before it
// campaigns, a replica asks the apiserver, one SelfSubjectAccessReview per
// rule, whether it may do each; every missing rule is named at once, with
// the YAML to add, in the log (error) and in /readyz, which stays 503
// while one is missing. The missing rules are asked about again every
// retry period, so that fixing the roles without a restart is enough.
// Meanwhile the replica does not campaign (nor join a shard group, nor
// start workers without election): a leader without a permission its
// workers need fails every such write, so it is better left to a replica
// that has them, and a rollout waits on the unready replica instead of
// replacing a working one. Its caches run, so that it leads at once once
// granted. Where it may not ask (SelfSubjectAccessReview refused), it
// starts without the check and says so.
//
// # Metrics
//
// /metrics serves Options.Registry (a new registry with Go and process
// collectors when nil): the election's metrics, and the engine's metrics
// (rein_handler_*, workqueue_*, rein_cache_objects) of every factory built
// without framework.Options.Registerer, which New registers there. A
// factory given another Registerer keeps its metrics there, and New warns
// that /metrics does not serve them.
//
// /metrics is plain HTTP unless Options.MetricsSecure (--metrics-secure):
// then it is HTTPS, and each scrape is let through only when the apiserver
// authenticates its bearer token (TokenReview) and allows its user to get
// the non-resource URL /metrics (SubjectAccessReview), as
// controller-runtime's secure metrics do: 401 without a token the
// apiserver knows, 403 without the rule. The replica's service account
// needs create on tokenreviews.authentication.k8s.io and
// subjectaccessreviews.authorization.k8s.io; the scraper's, a ClusterRole
// with nonResourceURLs ["/metrics"], verbs ["get"]. A decision is kept for
// a minute at most (30 s when forbidden), so a scraper costs the apiserver
// two requests a minute, not two a scrape. The certificate is tls.crt and
// tls.key of Options.MetricsCertDir (--metrics-cert-dir), loaded again
// when they change, or else a self-signed one made in memory (the replica
// logs so), which scrapers accept only without verifying it.
//
// # Profiling
//
// Options.PprofBindAddress (--pprof-bind-address, off by default) serves
// net/http/pprof's handlers under /debug/pprof/ on an address of their
// own, plain HTTP and unauthenticated: keep it on loopback and reach it
// with kubectl port-forward.
//
// # Tracing
//
// OpenTelemetry tracing is off unless the environment NewOptions reads
// asks for it, and costs nothing then. It is on when OTEL_TRACES_EXPORTER
// is "otlp", or when it is unset and OTEL_EXPORTER_OTLP_ENDPOINT (or
// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) is set; OTEL_TRACES_EXPORTER=none
// and OTEL_SDK_DISABLED=true keep it off. Spans go out by OTLP over
// OTEL_EXPORTER_OTLP_PROTOCOL, http/protobuf (the default) or grpc,
// sampled by OTEL_TRACES_SAMPLER and OTEL_TRACES_SAMPLER_ARG (default
// parentbased_always_on). A malformed value of these is a mistake New
// reports with the others. The exporter, the batch span processor and the
// resource read the rest of the OTEL_* variables themselves; the resource's
// service.instance.id is the replica's identity.
//
// Run then gives its tracer provider to every factory built without
// framework.Options.TracerProvider (a span per reconcile and per handler
// call, and the handlers' requests carry traceparent: see
// framework.Options) and to the webhook server (a request continues the
// caller's trace, the apiserver's), and exports the spans still buffered
// when it returns, for at most 5 s.
//
// # Flags
//
// The flags of Options.BindFlags and Group.BindFlags never stop
// flag.Parse: a malformed value is recorded, and New reports every
// malformed value with every other problem of the options and groups
// (timings that do not fit, bad addresses, an invalid lease name) in one
// error, so that one run names every mistake; LoadConfig reports the
// options' own at once.
// An unknown flag still stops flag.Parse at once (the flag package's rule).
//
// # Ending
//
// Run does all this in the background and ends the process (os.Exit) when
// the replica ends, with the codes ExitOK, ExitLeaseLost, ExitFailed and
// ExitForced: main blocks with `select {}`. New and Replica.Run are the same
// without the signals and the exit, for tests and for programs that embed a
// replica.
package start
