package start

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rein-k8s/rein/pkg/fence"
	"github.com/rein-k8s/rein/pkg/framework"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/sirupsen/logrus"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/rein-k8s/rein/internal/connhealth"
	"github.com/rein-k8s/rein/internal/electionflags"
	"github.com/rein-k8s/rein/internal/engine"
	"github.com/rein-k8s/rein/internal/procmetrics"
	"github.com/rein-k8s/rein/internal/tracing"
	"github.com/rein-k8s/rein/pkg/leader"
	"github.com/rein-k8s/rein/pkg/shard"
)

// Starter is a group of controllers as the replica runs them: a
// *framework.Factory, or a generated factory (which embeds one). Base
// returns that factory.
type Starter interface {
	Base() *framework.Factory
}

var _ Starter = (*framework.Factory)(nil)

// Group is one election group: the factories whose controllers fail over
// together, behind one Lease (or one set of shards), and the hooks of its
// leader. It is the one description of what a replica runs: Run and New
// take one group or several, each failing over on its own.
type Group struct {
	// LeaseName names the group's Lease, in Options.LeaseNamespace
	// (--leader-elect-resource-name, with BindFlags). Required with
	// leader election; two groups need two names.
	LeaseName string
	// Factories are the group's factories (a generated factory, or a
	// *framework.Factory).
	Factories []Starter
	// OnLeader hooks run in their own goroutines when this replica starts
	// leading the group; their context ends when leadership does. They
	// start after the term's workers, so handlers may already be running:
	// a hook is not a "before any handler" step (do that work in the
	// handler, or before Run). A sharded group has no leader: it takes
	// none.
	OnLeader []func(ctx context.Context) error
	// Shards, when above zero, makes the group sharded active-active
	// (pkg/shard, --shards with BindFlags): every replica runs workers,
	// each for the keys of the shards it holds, and LeaseName names the
	// group's Leases (a member Lease per replica, a record per shard).
	// Zero is a single leader. Every replica of a group must use the same
	// count.
	Shards int
	// partitionCaches is --partition-caches (BindFlags): see
	// PartitionShards.
	partitionCaches partitionMode

	// flagErrs collects malformed values BindFlags' flags were given.
	flagErrs *[]error
}

// BindFlags binds the group's flags to g's fields, with g's current values
// as defaults: --leader-elect-resource-name (LeaseName), --shards and
// --partition-caches. Malformed values do not stop the parse; New reports
// them with every other mistake.
func (g *Group) BindFlags(fs *flag.FlagSet) {
	if g.flagErrs == nil {
		g.flagErrs = new([]error)
	}
	scratch := flag.NewFlagSet("", flag.ContinueOnError)
	scratch.StringVar(&g.LeaseName, flagName(electionflags.ResourceName), g.LeaseName,
		"Name of the Lease the replicas elect a leader with (with --shards, the name of the shard group).")
	scratch.IntVar(&g.Shards, "shards", g.Shards,
		"Run sharded active-active with this many shards: every replica works on the keys of the shards it holds (0: one leader works, the others stand by). Every replica must use the same count.")
	scratch.Var(&g.partitionCaches, "partition-caches",
		"With --shards: each replica caches only the objects of the shards it holds (needs the apiserver's feature gate ShardedListAndWatch; without it every object is cached, with a warning). warm-next also caches the shards it would take over first if another replica died: a takeover lists nothing, for about twice the memory. Every replica must use the same setting (true or false; warm-next may differ).")
	moveFlags(scratch, fs, g.flagErrs)
}

// PartitionShards is the value of framework.Options.PartitionShards for
// the group's factories: Shards when --partition-caches (BindFlags) is
// true or warm-next, else 0. With it each replica of the sharded group
// lists and watches only the objects of the shards it holds (the
// apiserver's ShardedListAndWatch; docs/sharding.md, "Partitioned
// caches"). A factory
// decides its controllers' caches as they are made, before New sees it,
// so the program passes the flag on:
//
//	framework.Options{PartitionShards: group.PartitionShards()}
//
// New refuses --partition-caches when a factory was built without it.
// A program without flags sets framework.Options.PartitionShards itself.
func (g *Group) PartitionShards() int {
	if g.partitionCaches == partitionOff {
		return 0
	}
	return g.Shards
}

// partitionMode is the value of --partition-caches: a boolean, or
// warm-next.
type partitionMode int

const (
	partitionOff partitionMode = iota
	partitionOn
	partitionWarmNext
)

func (m *partitionMode) String() string {
	switch *m {
	case partitionOn:
		return "true"
	case partitionWarmNext:
		return "warm-next"
	}
	return "false"
}

func (m *partitionMode) Set(v string) error {
	if v == "warm-next" {
		*m = partitionWarmNext
		return nil
	}
	on, err := strconv.ParseBool(v)
	if err != nil {
		return errors.New("want true, false or warm-next")
	}
	*m = partitionOff
	if on {
		*m = partitionOn
	}
	return nil
}

// IsBoolFlag lets --partition-caches stand alone for true.
func (m *partitionMode) IsBoolFlag() bool { return true }

// problems reports every mistake of g's settings, naming the flag to fix.
func (g *Group) problems(leaderElect bool) []error {
	var errs []error
	if g.flagErrs != nil {
		errs = append(errs, *g.flagErrs...)
	}
	if g.Shards < 0 || g.Shards > shard.MaxShards {
		errs = append(errs, fmt.Errorf("--shards=%d: want 0 (one leader) to %d", g.Shards, shard.MaxShards))
	}
	if g.partitionCaches != partitionOff && g.Shards == 0 {
		errs = append(errs, errors.New("--partition-caches needs --shards: only a sharded group's replicas split the objects among them"))
	}
	if leaderElect && g.LeaseName == "" {
		errs = append(errs, fmt.Errorf("no lease name: set %s or Group.LeaseName", electionflags.ResourceName))
	}
	return errs
}

// ErrLeaseLost is the error Replica.Run returns when a lease was lost
// without being asked to stop (and ReturnToStandby is off).
var ErrLeaseLost = errors.New("leader election lost")

// Replica runs the life of one replica: warm caches, elect, work, shut
// down. Run is the documented way to run one in a program; Replica is for
// tests and for programs that decide themselves how to end.
type Replica struct {
	opts     Options
	log      *logrus.Entry
	identity string
	groups   []*groupRun
	http     *probeServers
	rbac     *rbacCheck // nil without the permission check (rbac_check.go)
}

type groupRun struct {
	Group
	elector *leader.Elector // nil without leader election, or when sharded
	member  *shard.Member   // the sharded group's membership; nil when not sharded
	// fieldManager marks the group's writes for the fencing policy;
	// "" without server-side fencing.
	fieldManager string
	synced       atomic.Bool
	log          *logrus.Entry
}

// New checks opts and the groups, builds one elector per group and binds
// the metrics and probe addresses, so that every mistake surfaces here,
// before anything runs.
func New(opts Options, groups ...Group) (*Replica, error) {
	if opts.Logger == nil {
		opts.Logger = logrus.NewEntry(logrus.StandardLogger())
	}
	if opts.DrainGrace == 0 {
		opts.DrainGrace = DefaultDrainGrace
	}
	if len(groups) == 0 {
		return nil, errors.New("start: nothing to run: pass at least one Group with a factory")
	}
	var leaseNamespaceWhy string
	if opts.LeaderElect {
		opts.LeaseNamespace, leaseNamespaceWhy = opts.resolveLeaseNamespace()
	}
	var leaseNames []string
	var groupErrs []error
	for _, g := range groups {
		if g.LeaseName != "" {
			leaseNames = append(leaseNames, g.LeaseName)
		}
		groupErrs = append(groupErrs, g.problems(opts.LeaderElect)...)
	}
	if err := errors.Join(append([]error{opts.validate(leaseNames)}, groupErrs...)...); err != nil {
		return nil, fmt.Errorf("start: %w", err)
	}
	opts.applyLogFlags()
	if opts.Registry == nil {
		opts.Registry = prometheus.NewRegistry()
		opts.Registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	// The process's own: apiserver requests (rest_client_requests_total)
	// and fence refusals.
	if err := procmetrics.Register(opts.Registry); err != nil {
		return nil, fmt.Errorf("start: register metrics: %w", err)
	}
	r := &Replica{opts: opts, log: opts.Logger}

	var clients, shardClients kubernetes.Interface
	if opts.LeaderElect {
		var err error
		if r.identity, err = leader.NewIdentity(opts.IdentityBase); err != nil {
			return nil, fmt.Errorf("start: %w", err)
		}
		// The elector's client is not fenced and not throttled by the
		// workers' traffic: it has its own connection, checked so that a
		// dead one is closed within the renew deadline (connhealth).
		readIdle, ping := opts.connectionChecks()
		cfg, err := connhealth.Config(opts.Config, readIdle, ping)
		if err != nil {
			return nil, fmt.Errorf("start: lease client: %w", err)
		}
		cfg.Wrap(procmetrics.Transport)
		if clients, err = kubernetes.NewForConfig(cfg); err != nil {
			return nil, fmt.Errorf("start: lease client: %w", err)
		}
		// A sharded group's takeover writes one record per shard of a
		// dead member at once: client-go's default limit (5/s, burst 10)
		// would spread them over seconds. Its requests are bounded by the
		// protocol (moves only), so it runs unthrottled unless told.
		shardCfg := rest.CopyConfig(cfg)
		if shardCfg.QPS == 0 && shardCfg.RateLimiter == nil {
			shardCfg.QPS = -1
		}
		if shardClients, err = kubernetes.NewForConfig(shardCfg); err != nil {
			return nil, fmt.Errorf("start: shard lease client: %w", err)
		}
		r.log = r.log.WithField("identity", r.identity)
	}

	if opts.CheckRBAC {
		var err error
		if r.rbac, err = newRBACCheckFor(opts.Config, opts.RetryPeriod, r.log); err != nil {
			return nil, fmt.Errorf("start: %w", err)
		}
	}

	leases := map[string]bool{}
	for i, g := range groups {
		if len(g.Factories) == 0 {
			return nil, fmt.Errorf("start: election group %d has no factory", i)
		}
		if leases[g.LeaseName] {
			return nil, fmt.Errorf("start: two election groups share the lease %q: give each its own LeaseName", g.LeaseName)
		}
		leases[g.LeaseName] = true
		gr := &groupRun{Group: g, log: r.log}
		for j, s := range g.Factories {
			err := engine.OpsOf(s.Base()).RegisterMetrics(opts.Registry)
			switch {
			case errors.Is(err, engine.ErrMetricsElsewhere):
				r.log.WithField("factory", j).Warn("this factory's metrics go to the Registerer of its framework.Options, which /metrics does not serve: leave framework.Options.Registerer nil, or set start.Options.Registry to the same registry")
			case err != nil:
				return nil, fmt.Errorf("start: election group %d, factory %d: %w", i, j, err)
			}
		}
		for j, s := range g.Factories {
			switch n := engine.OpsOf(s.Base()).Partitioned(); {
			case g.Shards == 0 && n != 0:
				return nil, fmt.Errorf("start: election group %d, factory %d: partitioned caches (framework.Options.PartitionShards) need a sharded group: set Shards (--shards) to the same count", i, j)
			case g.partitionCaches != partitionOff && n == 0:
				return nil, fmt.Errorf("start: election group %d, factory %d: --partition-caches is set but the factory was built without partitioned caches: build it with framework.Options{PartitionShards: group.PartitionShards()}", i, j)
			}
		}
		if g.Shards != 0 {
			if err := r.shardGroup(gr, shardClients); err != nil {
				return nil, fmt.Errorf("start: election group %d: %w", i, err)
			}
		} else if opts.LeaderElect {
			if err := r.leaderGroup(gr, clients); err != nil {
				return nil, fmt.Errorf("start: %w", err)
			}
		}
		r.groups = append(r.groups, gr)
	}

	srv, err := newProbeServers(opts, r.log, r.probeChecks())
	if err != nil {
		return nil, fmt.Errorf("start: %w", err)
	}
	r.http = srv
	if opts.Webhook != nil {
		if err := opts.Webhook.RegisterMetrics(opts.Registry); err != nil {
			srv.close()
			return nil, fmt.Errorf("start: the webhook server's metrics: %w", err)
		}
		if err := opts.Webhook.Listen(); err != nil {
			srv.close()
			return nil, fmt.Errorf("start: %w", err)
		}
	}
	if opts.LeaderElect {
		r.log.Infof("lease namespace %q (%s)", opts.LeaseNamespace, leaseNamespaceWhy)
	}
	return r, nil
}

// leaderGroup makes g a single-leader group: its elector, the fallback
// hold of its factories' writes (the elector's fence), and, with
// ServerSideFencing, the field manager the fencing policy checks.
func (r *Replica) leaderGroup(g *groupRun, clients kubernetes.Interface) error {
	g.log = r.log.WithField("lease", r.opts.LeaseNamespace+"/"+g.LeaseName)
	e, err := leader.New(leader.Config{
		Client:    clients.CoordinationV1(),
		Namespace: r.opts.LeaseNamespace, Name: g.LeaseName, Identity: r.identity,
		LeaseDuration: r.opts.LeaseDuration, RenewDeadline: r.opts.RenewDeadline, RetryPeriod: r.opts.RetryPeriod,
		Logger: g.log, Registerer: r.opts.Registry,
	})
	if err != nil {
		return err
	}
	g.elector = e
	// Every write of the group passes the fence: a handler's under
	// its term (its context carries it), any other (events, hooks)
	// under the elector's fence; none leaves the process unless the
	// lease was renewed within the renew deadline, by the monotonic
	// clock.
	var manager string
	if r.opts.ServerSideFencing {
		if manager, err = leader.FencingFieldManager(r.opts.LeaseNamespace, g.LeaseName, r.identity); err != nil {
			return err
		}
	}
	for _, s := range g.Factories {
		engine.OpsOf(s.Base()).GuardWrites(e.Fence())
		// The apiserver's own check, for writes that outlive the
		// fence in the network.
		engine.OpsOf(s.Base()).SetFieldManager(manager)
	}
	g.fieldManager = manager
	if manager != "" {
		g.log.WithField("fieldManager", manager).Info("server-side fencing: writes name this replica; the rein-fencing policy refuses them once it no longer holds the lease")
	}
	return nil
}

// logServing says where /metrics, the probes, pprof and the webhooks are
// served, if anywhere.
func (r *Replica) logServing() {
	var parts []string
	fields := logrus.Fields{}
	if a := r.MetricsAddr(); a != "" {
		if r.http.metricsSecure {
			parts = append(parts, "/metrics on https://"+a+" (each scrape reviewed: TokenReview, SubjectAccessReview)")
		} else {
			parts = append(parts, "/metrics on http://"+a)
		}
		fields["metrics"] = a
	}
	if a := r.ProbeAddr(); a != "" {
		parts = append(parts, "/healthz and /readyz on http://"+a)
		fields["probes"] = a
	}
	if a := r.PprofAddr(); a != "" {
		parts = append(parts, "pprof on http://"+a+"/debug/pprof/")
		fields["pprof"] = a
	}
	if r.opts.Webhook != nil {
		if a := r.opts.Webhook.Addr(); a != "" {
			parts = append(parts, "webhooks on https://"+a)
			fields["webhooks"] = a
		}
	}
	if len(parts) > 0 {
		r.log.WithFields(fields).Info("serving " + strings.Join(parts, ", "))
	}
}

// LeaseNamespace is the namespace of this replica's Leases, as defaulted
// by New ("" without election).
func (r *Replica) LeaseNamespace() string {
	if !r.opts.LeaderElect {
		return ""
	}
	return r.opts.LeaseNamespace
}

// Identity is this replica's identity in its Leases ("" without election).
func (r *Replica) Identity() string { return r.identity }

// MetricsAddr and ProbeAddr are the bound addresses ("" when off), useful
// when an address was given with port 0.
func (r *Replica) MetricsAddr() string { return r.http.metricsAddr() }

// ProbeAddr is the address serving /healthz and /readyz.
func (r *Replica) ProbeAddr() string { return r.http.probeAddr() }

// PprofAddr is the address serving /debug/pprof/ ("" when off).
func (r *Replica) PprofAddr() string { return r.http.pprofAddr() }

// probeChecks are the checks of /healthz and /readyz: the replica's own,
// then the program's (Options.HealthChecks, ReadyChecks) by name.
//
// /healthz: ping; lease, with leader election: no group's leader has a
// stuck renew loop (leader.Elector.Check).
//
// /readyz: ping; caches: every group's caches have synced and none lags;
// lease, with leader election: every group's elector can see its Lease (a
// standby cut off from the apiserver for longer than the lease duration is
// not ready; see leader.Elector.Visibility); webhook, with a webhook
// server: it serves; rbac, with the start-up check: the replica has every
// permission it needs (rbac_check.go). For a sharded group it also says which shards this
// replica holds (readiness does not depend on holding any: a replica with
// none is a ready spare).
func (r *Replica) probeChecks() probeChecks {
	var electors []*leader.Elector
	for _, g := range r.groups {
		if g.elector != nil {
			electors = append(electors, g.elector)
		}
	}
	health := []check{ping}
	ready := []check{ping, {name: "caches", run: r.cachesReady}}
	if len(electors) > 0 {
		health = append(health, check{name: "lease", run: func(req *http.Request) error {
			for _, e := range electors {
				if err := e.Check(req); err != nil {
					return err
				}
			}
			return nil
		}})
		ready = append(ready, check{name: "lease", run: func(*http.Request) error {
			var errs []error
			for _, e := range electors {
				errs = append(errs, e.Visibility())
			}
			return errors.Join(errs...)
		}})
	}
	if w := r.opts.Webhook; w != nil {
		ready = append(ready, check{name: "webhook", run: func(*http.Request) error { return w.Ready() }})
	}
	if r.rbac != nil {
		// Last of the replica's own: it ends with the YAML to add.
		ready = append(ready, check{name: "rbac", run: func(*http.Request) error { return r.rbac.err() }})
	}
	for _, name := range slices.Sorted(maps.Keys(r.opts.HealthChecks)) {
		health = append(health, check{name: name, run: r.opts.HealthChecks[name]})
	}
	for _, name := range slices.Sorted(maps.Keys(r.opts.ReadyChecks)) {
		ready = append(ready, check{name: name, run: r.opts.ReadyChecks[name]})
	}
	return probeChecks{health: health, ready: ready, readyDetail: r.shardsHeld}
}

// cachesReady is nil when every group's caches have synced and none lags.
func (r *Replica) cachesReady(*http.Request) error {
	var errs []error
	for _, g := range r.groups {
		if !g.synced.Load() {
			errs = append(errs, fmt.Errorf("caches of lease group %q not synced yet", g.LeaseName))
		}
		for _, s := range g.Factories {
			if err := engine.OpsOf(s.Base()).CacheLag(); err != nil {
				errs = append(errs, fmt.Errorf("lease group %q: %w", g.LeaseName, err))
			}
		}
	}
	return errors.Join(errs...)
}

// shardsHeld says, for each sharded group, which shards this replica holds.
func (r *Replica) shardsHeld() string {
	var details []string
	for _, g := range r.groups {
		if g.member != nil {
			details = append(details, fmt.Sprintf("shard group %s: holds %d of %d shards %v", g.LeaseName, len(g.member.Held()), g.Shards, g.member.Held()))
		}
	}
	return strings.Join(details, "\n")
}

// Run runs the replica until ctx ends (the graceful path: stop taking
// keys, drain running handlers within DrainGrace, release the leases; it
// returns nil) or a lease is lost without ReturnToStandby (workers stop at
// once and no write leaves the process; it returns an error matching
// ErrLeaseLost). A fatal start-up problem (a handler registration mistake)
// is returned too. Run may be called once.
func (r *Replica) Run(ctx context.Context) error {
	tp, err := r.startTracing(ctx)
	if err != nil {
		return err
	}
	if tp != nil {
		// Deferred first, so it runs last: after the webhook server and
		// the workers, whose last spans it exports.
		defer r.stopTracing(ctx, tp)
	}
	r.http.serve(r.log)
	r.logServing()
	defer r.http.shutdown()
	checkCtx, stopCheck := context.WithCancel(ctx)
	defer stopCheck()
	r.startRBACCheck(checkCtx)

	// The webhook server answers until the groups are done (lease
	// released): it stops last, with the probes.
	webhookErr := make(chan error, 1)
	webhookCtx, stopWebhook := context.WithCancel(context.WithoutCancel(ctx))
	if tp != nil {
		// Its requests continue the apiserver's traces.
		webhookCtx = tracing.WithProvider(webhookCtx, tp)
	}
	groupsCtx, stopGroups := context.WithCancel(ctx)
	defer stopGroups()
	if r.opts.Webhook != nil {
		go func() {
			err := r.opts.Webhook.Serve(webhookCtx)
			if err != nil && webhookCtx.Err() == nil {
				// Serving failed on its own: end the replica, gracefully.
				r.log.WithError(err).Error("webhook server failed; stopping the replica")
				stopGroups()
			}
			webhookErr <- err
		}()
	} else {
		webhookErr <- nil
	}

	// Caches outlive the workers: draining handlers still read them.
	cachesCtx, stopCaches := context.WithCancel(context.WithoutCancel(ctx))
	defer stopCaches()

	errs := make(chan error, len(r.groups))
	var wg sync.WaitGroup
	for _, g := range r.groups {
		wg.Go(func() {
			err := r.runGroup(groupsCtx, cachesCtx, g)
			if err != nil {
				// One group's failure ends the replica: the others shut
				// down gracefully.
				stopGroups()
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	var all []error
	for err := range errs {
		if err != nil {
			all = append(all, err)
		}
	}
	stopWebhook()
	if err := <-webhookErr; err != nil {
		all = append(all, err)
	}
	return errors.Join(all...)
}

func (r *Replica) runGroup(ctx, cachesCtx context.Context, g *groupRun) error {
	for _, s := range g.Factories {
		if err := engine.OpsOf(s.Base()).StartCaches(cachesCtx); err != nil {
			return err
		}
	}
	if !r.waitForCaches(ctx, g) {
		return nil // told to stop before the caches synced
	}
	g.synced.Store(true)
	g.log.Info("caches synced; every key is queued")
	if !r.awaitRBAC(ctx, g) {
		return nil // told to stop while permissions were missing
	}

	if g.member != nil {
		return r.workSharded(ctx, g)
	}
	if g.elector == nil {
		return r.work(ctx, g, ctx, nil)
	}
	for {
		// The campaign's context ends only after the drain, so that the
		// fence stays open while running handlers finish.
		campaignCtx, endCampaign := context.WithCancel(context.WithoutCancel(ctx))
		// A standby stops campaigning at once when told to stop.
		stopWithCtx := context.AfterFunc(ctx, endCampaign)
		term, err := g.elector.Campaign(campaignCtx)
		stopWithCtx()
		if err != nil {
			endCampaign()
			if ctx.Err() != nil {
				g.log.Info("stopped while standing by")
				return nil
			}
			return fmt.Errorf("lease %s: %w", g.LeaseName, err)
		}
		err = r.work(ctx, g, term.Context(), term)
		endCampaign()
		if err == nil || !errors.Is(err, ErrLeaseLost) {
			return err
		}
		if !r.opts.ReturnToStandby {
			return err
		}
		<-term.Done() // the elector campaigns again once the term has wound down
		g.log.WithError(err).Warn("lease lost; back to standby with warm caches")
	}
}

// waitForCaches waits until the group's caches have synced, logging what
// is missing every few seconds. It never gives up on its own: an apiserver
// that is down or a CRD not yet installed keeps the replica unready, says
// so, and lets it recover; it returns false when ctx ends first.
func (r *Replica) waitForCaches(ctx context.Context, g *groupRun) bool {
	for _, s := range g.Factories {
		for {
			waitCtx, cancel := context.WithTimeout(ctx, cacheSyncLogEvery)
			err := engine.OpsOf(s.Base()).WaitForCacheSync(waitCtx)
			cancel()
			if err == nil {
				break
			}
			if ctx.Err() != nil {
				return false
			}
			g.log.WithError(err).Warn("waiting for caches; not ready")
		}
	}
	return true
}

// cacheSyncLogEvery is how often a replica whose caches do not sync says so.
const cacheSyncLogEvery = 5 * time.Second

// work runs the group's workers and hooks until ctx ends (graceful: stop
// taking keys, drain, end the term, release) or termCtx ends first (lost).
// Handlers get the term's context: it ends at once on a lost lease, and
// only after the drain on a graceful stop, so a handler's call in flight
// can finish within DrainGrace. OnLeader hooks get a context that ends when
// the replica is told to stop.
func (r *Replica) work(ctx context.Context, g *groupRun, termCtx context.Context, term *leader.Term) error {
	workCtx, endTerm := context.WithCancel(termCtx)
	defer endTerm()
	if term != nil {
		// Handlers write under the term: fence.Transport (the factory's
		// clients, and the user's for external systems) refuses their
		// writes once it ended, and sends its token.
		workCtx = fence.WithHold(workCtx, term)
	} else {
		workCtx = fence.Unfenced(workCtx)
	}
	if term != nil && g.fieldManager != "" {
		// Start writing only once the fencing policy admits this term's
		// writes: from then on it refuses the previous holder's.
		began := time.Now()
		probes, err := term.AwaitFencingPolicy(workCtx, g.fieldManager)
		switch {
		case err == nil:
			g.log.WithFields(logrus.Fields{"probes": probes, "took": time.Since(began).Round(time.Microsecond)}).
				Info("server-side fencing: the apiserver admits this term's writes")
		case workCtx.Err() != nil:
			// The term ended first: the common ending reports it (a
			// lost lease, so that a replica returning to standby does).
		default:
			g.log.WithError(err).Warn("server-side fencing: cannot tell whether the apiserver admits this term's writes yet; starting all the same (the policy still refuses the previous holder once it sees this term)")
		}
	}
	var workers groupWorkers
	var hooks sync.WaitGroup
	hookCtx, stopHooks := context.WithCancel(workCtx)
	defer stopHooks()
	// A term that begins after this replica was stopped or cut off must
	// not act on what its caches missed meanwhile. When the replica is
	// told to stop, or the term ends, first, no worker starts: the common
	// ending below releases or reports the lease.
	if term == nil || r.awaitCurrentUntil(ctx, workCtx, g) {
		var err error
		workers, err = startWorkers(workCtx, g)
		if err != nil {
			return err
		}
		for i, hook := range g.OnLeader {
			hooks.Go(func() {
				if err := hook(hookCtx); err != nil && hookCtx.Err() == nil {
					g.log.WithError(err).WithField("hook", i).Error("OnLeader hook failed")
				}
			})
		}
		if term != nil {
			g.log.WithField("token", term.Token().String()).Info("leading: workers started")
		} else {
			g.log.Info("leading: workers started")
		}
	}

	select {
	case <-ctx.Done():
	case <-workCtx.Done():
	}
	if ctx.Err() != nil {
		workers.stop()
		stopHooks()
		g.log.Info("stopping: no new keys; draining running handlers")
		deadline := time.Now().Add(r.opts.DrainGrace)
		if err := workers.wait(deadline); err != nil {
			g.log.WithError(err).Warn("drain grace passed; ending the term anyway (handlers' contexts end now; the fence stops late writes)")
		}
		if !waitGroupUntil(&hooks, deadline) {
			g.log.Warn("OnLeader hooks still running after the drain grace")
		}
		endTerm()
		if term != nil {
			releaseCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.opts.RenewDeadline)
			defer cancel()
			if err := term.Release(releaseCtx); err != nil {
				g.log.WithError(err).Warn("lease not released; standbys take it when it expires")
			} else {
				g.log.Info("lease released")
			}
		}
		return nil
	}
	// The term ended by itself: the fence is closed already, so no write
	// leaves the process; the workers stop taking keys and the handlers'
	// contexts end at once.
	err := fmt.Errorf("%w: lease %s: %w", ErrLeaseLost, g.LeaseName, context.Cause(workCtx))
	g.log.WithError(err).Error("lost the lease; workers stopped")
	if r.opts.ReturnToStandby {
		// Before campaigning again, wait for this term's handlers.
		deadline := time.Now().Add(r.opts.DrainGrace)
		_ = workers.wait(deadline)
		waitGroupUntil(&hooks, deadline)
	}
	return err
}

// awaitCurrentUntil is awaitCurrent for a new term: it reports whether the
// caches are current before ctx (the replica's) or term ends.
func (r *Replica) awaitCurrentUntil(ctx, term context.Context, g *groupRun) bool {
	waitCtx, cancel := context.WithCancel(term)
	defer cancel()
	defer context.AfterFunc(ctx, cancel)()
	return r.awaitCurrent(waitCtx, g, nil) == nil
}

// awaitCurrent waits until the caches of g's factories hold, for the keys
// match admits (nil: all), the apiserver's state as of the call, so that a
// new hold runs no handler on objects its caches missed while this replica
// was stopped or cut off. A failed check (the apiserver unreachable, say)
// is retried every RetryPeriod; it returns an error only when ctx ends.
func (r *Replica) awaitCurrent(ctx context.Context, g *groupRun, match func(key string) bool) error {
	began := time.Now()
	for _, s := range g.Factories {
		for {
			err := engine.OpsOf(s.Base()).AwaitCurrent(ctx, match)
			if err == nil {
				break
			}
			if ctx.Err() != nil {
				return err
			}
			g.log.WithError(err).Warn("cannot tell whether the caches are current; no handler of the new hold runs until they are")
			t := time.NewTimer(r.opts.RetryPeriod)
			select {
			case <-ctx.Done():
				t.Stop()
				return context.Cause(ctx)
			case <-t.C:
			}
		}
	}
	g.log.WithField("took", time.Since(began).Round(time.Microsecond)).Info("caches current as of the new hold's start: its handlers may run")
	return nil
}

// groupWorkers are the workers of a group's factories, for one hold: a
// single leader's term, or a sharded group's membership (whose gate hands
// each key its shard). Both paths start, stop and drain them the same way.
type groupWorkers []*engine.Workers

// startWorkers starts the workers of every factory of g, their handlers
// running in ctx (or in the context the factory's gate gives a key).
func startWorkers(ctx context.Context, g *groupRun) (groupWorkers, error) {
	var ws groupWorkers
	for _, s := range g.Factories {
		w, err := engine.OpsOf(s.Base()).StartWorkers(ctx)
		if err != nil {
			ws.stop()
			return nil, err
		}
		ws = append(ws, w)
	}
	return ws, nil
}

// stop makes every worker stop taking keys; running handlers go on.
func (ws groupWorkers) stop() {
	for _, w := range ws {
		w.Stop()
	}
}

// wait waits for the running handlers until deadline; the errors say
// which did not finish.
func (ws groupWorkers) wait(deadline time.Time) error {
	var errs []error
	for _, w := range ws {
		if err := w.Wait(time.Until(deadline)); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// waitGroupUntil waits for wg until deadline; it reports whether wg is done.
func waitGroupUntil(wg *sync.WaitGroup, deadline time.Time) bool {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	select {
	case <-done:
		return true
	case <-t.C:
		return false
	}
}
