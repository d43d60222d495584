package start

import (
	"errors"
	"flag"
	"fmt"
	"maps"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/rein-k8s/rein/internal/connhealth"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/client-go/rest"

	"github.com/rein-k8s/rein/internal/electionflags"
	"github.com/rein-k8s/rein/internal/tracing"
	"github.com/rein-k8s/rein/pkg/leader"
	"github.com/rein-k8s/rein/pkg/webhook"
)

// DefaultDrainGrace bounds how long handlers that are running when a replica
// is told to stop may take to finish. Keep the pod's
// terminationGracePeriodSeconds (30s by default) above it plus the time a
// release takes.
const DefaultDrainGrace = 15 * time.Second

// serviceAccountNamespaceFile holds the pod's namespace in a cluster.
const serviceAccountNamespaceFile = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"

// Options configures a replica. Build it with NewOptions, which reads the
// pod's environment, then bind flags or set fields.
type Options struct {
	// Config reaches the apiserver for the Lease. Required: set it, or let
	// LoadConfig set it.
	Config *rest.Config
	// Kubeconfig is the kubeconfig file LoadConfig reads (--kubeconfig).
	// Empty means $KUBECONFIG, then ~/.kube/config, then the in-cluster
	// configuration.
	Kubeconfig string

	// LeaderElect runs workers only while this replica holds the Lease.
	// Off, workers run at once: for a single replica or local debugging.
	LeaderElect bool
	// LeaseNamespace holds the Leases of every group (each named by its
	// Group.LeaseName). Empty is defaulted when the replica starts: to the
	// namespace of the kubeconfig context LoadConfig loaded, else
	// "default" (see the package documentation).
	LeaseNamespace string
	// LeaseDuration, RenewDeadline and RetryPeriod are the election's
	// timings: see pkg/leader. Zero means its defaults (15s, 10s, 2s).
	LeaseDuration, RenewDeadline, RetryPeriod time.Duration
	// IdentityBase names this replica in the Lease, with a random suffix
	// added (leader.NewIdentity). NewOptions sets POD_NAME or the hostname.
	IdentityBase string

	// MetricsBindAddress serves /metrics; "" or "0" turns it off.
	// NewOptions sets DefaultMetricsBindAddress, on loopback: in a pod, pass
	// ":8080" so that Prometheus reaches it.
	MetricsBindAddress string
	// HealthProbeBindAddress serves /healthz and /readyz; "" or "0" turns
	// it off. It may equal MetricsBindAddress. NewOptions sets
	// DefaultHealthProbeBindAddress, on loopback: in a pod, pass ":8081"
	// so that the kubelet's probes reach it.
	HealthProbeBindAddress string
	// MetricsSecure serves /metrics over HTTPS and lets a scrape through
	// only when the apiserver authenticates its bearer token (a
	// TokenReview) and authorizes its user to get the non-resource URL
	// /metrics (a SubjectAccessReview): no or an unknown token is
	// answered 401, a user without the rule 403. The replica's service
	// account needs create on tokenreviews and subjectaccessreviews; a
	// scraper, a ClusterRole with nonResourceURLs ["/metrics"], verbs
	// ["get"]. Decisions are kept a minute at most. The probes cannot
	// share its address: the kubelet's carry no token.
	MetricsSecure bool
	// MetricsCertDir holds tls.crt and tls.key, the secure /metrics'
	// certificate (a mounted kubernetes.io/tls Secret), loaded again when
	// they change. Empty means a self-signed certificate made in memory,
	// which scrapers must accept without verifying it.
	MetricsCertDir string
	// PprofBindAddress serves net/http/pprof's handlers under
	// /debug/pprof/ on an address of their own, plain HTTP and
	// unauthenticated; "" or "0" (the default) turns it off. Keep it on
	// loopback and reach it with kubectl port-forward.
	PprofBindAddress string
	// HealthChecks and ReadyChecks are checks of the program's own that
	// /healthz and /readyz run after the replica's, by name (which must
	// not be a built-in check's: ping, lease, caches, webhook). An error
	// fails the endpoint (503, naming the check); ?verbose lists every
	// check with ok or its error. A failing health check has the kubelet
	// restart the replica: keep to what a restart cures.
	HealthChecks, ReadyChecks map[string]func(*http.Request) error

	// DrainGrace bounds the wait for running handlers on shutdown; zero
	// means DefaultDrainGrace.
	DrainGrace time.Duration
	// ReturnToStandby, on a lost lease, stops the workers and campaigns
	// again with warm caches instead of ending the replica. Off by default:
	// a replica that lost its lease without asking is often unwell (paused,
	// cut off, overloaded), and a restart is the safer cure.
	ReturnToStandby bool

	// ServerSideFencing sets the field manager of every write of the
	// handlers (that names none) to rein/<lease namespace>/<lease>/<identity>,
	// so that the fencing policy (leader.FencingPolicy and a binding per
	// Lease, installed with the deployment) lets the apiserver itself
	// refuse a write that arrives after this replica's term ended: the one
	// thing the in-process fence cannot catch (a request held in the
	// network). Off by default: it needs the policy installed, and every
	// replica's identity then appears as a manager in managedFields. See
	// pkg/leader, "Server-side fencing".
	ServerSideFencing bool

	// Webhook, when set, is served by this replica from its start to its
	// end, leader or not (admission and conversion only read; the
	// apiserver may call any replica). New binds its address, so that one
	// in use fails at once; /readyz waits for it; it stops last, after the
	// lease is released, so that requests keep being answered while the
	// replica drains. Build it with webhook.NewServer and register the
	// webhooks on it before Run.
	Webhook *webhook.Server

	// Registry serves /metrics: the election's metrics and those of every
	// factory built without framework.Options.Registerer (New registers
	// them here). Nil means a new registry with Go and process collectors.
	Registry *prometheus.Registry
	// Logger receives the replica's logs; nil means logrus's standard
	// logger. --log-format and --log-level (BindFlags) set its
	// logrus.Logger's formatter and level; without them it is left as
	// given.
	Logger *logrus.Entry

	// PrintRBAC makes Run print the ClusterRole, Roles and bindings the
	// program needs, from what it registered, and exit ExitOK without
	// reaching a cluster (--print-rbac; LoadConfig then loads nothing).
	// See "RBAC" in the package documentation.
	PrintRBAC bool
	// RBACServiceAccount is the ServiceAccount the printed bindings bind,
	// "namespace/name" or "name", and the name of the printed roles
	// (--rbac-service-account). Empty: the first group's lease name, in
	// the lease namespace.
	RBACServiceAccount string
	// CheckRBAC has a replica check, before it campaigns, that its user
	// has every permission the program needs, and not campaign while one
	// is missing (--rbac-check; NewOptions turns it on).
	CheckRBAC bool
	// RBACRules are permissions the program needs beyond those rein
	// registers (a typed client's Create or Delete in a handler, a client
	// rein does not make), granted cluster-wide: printed and checked with
	// the others.
	RBACRules []rbacv1.PolicyRule

	// podNamespace is the namespace NewOptions read from the pod's
	// environment, and podNamespaceFrom where it read it: to say why the
	// lease is where it is.
	podNamespace, podNamespaceFrom string
	// loaded is what LoadConfig loaded; its zero value means Config was set
	// directly.
	loaded loadedConfig
	// kubeconfigFlag is a --kubeconfig flag BindFlags found already defined
	// on its flag set (controller-runtime defines one on flag.CommandLine):
	// LoadConfig reads it when Kubeconfig is empty.
	kubeconfigFlag flag.Value
	// flagErrs collects malformed flag values BindFlags' flags were given.
	flagErrs *[]error
	// logFormat and logLevel are --log-format and --log-level ("": leave
	// the logger as it is); see logging.go.
	logFormat, logLevel string
	// tracing is what the OTEL_* variables NewOptions read ask for, and
	// tracingErr their mistakes (see tracing.go).
	tracing    tracing.Settings
	tracingErr error
}

// Default addresses NewOptions sets: loopback, so that a replica run on a
// workstation exposes nothing. A replica in a pod must be given addresses
// the kubelet and Prometheus can reach: --metrics-bind-address=:8080
// --health-probe-bind-address=:8081.
const (
	DefaultMetricsBindAddress     = "127.0.0.1:8080"
	DefaultHealthProbeBindAddress = "127.0.0.1:8081"
)

// DefaultLeaseNamespace is the lease namespace of a replica for which
// nothing names one: not the pod, not a flag, not the kubeconfig context.
const DefaultLeaseNamespace = "default"

// NewOptions returns defaults read from the pod's environment: leader
// election on, the lease namespace from the service account's namespace
// file or POD_NAMESPACE, the identity from POD_NAME or the hostname, metrics
// on 127.0.0.1:8080, probes on 127.0.0.1:8081, the start-up
// permission check on (CheckRBAC), and tracing as the OTEL_* variables
// ask (off unless they name an exporter; see "Tracing" in the package
// documentation). With LoadConfig (which reads KUBECONFIG and the
// kubeconfig files), this is the one place rein reads the environment.
func NewOptions() Options {
	o := Options{
		LeaderElect:            true,
		LeaseDuration:          leader.DefaultLeaseDuration,
		RenewDeadline:          leader.DefaultRenewDeadline,
		RetryPeriod:            leader.DefaultRetryPeriod,
		MetricsBindAddress:     DefaultMetricsBindAddress,
		HealthProbeBindAddress: DefaultHealthProbeBindAddress,
		DrainGrace:             DefaultDrainGrace,
		CheckRBAC:              true,
	}
	o.podNamespace, o.podNamespaceFrom = podNamespace()
	o.LeaseNamespace = o.podNamespace
	o.IdentityBase = os.Getenv("POD_NAME")
	if o.IdentityBase == "" {
		o.IdentityBase, _ = os.Hostname()
	}
	o.tracing, o.tracingErr = tracing.FromEnv(os.Getenv)
	return o
}

// podNamespace reads the pod's namespace from the service account's
// namespace file, else POD_NAMESPACE; it says which ("" when neither).
func podNamespace() (ns, from string) {
	if b, err := os.ReadFile(serviceAccountNamespaceFile); err == nil {
		if ns := strings.TrimSpace(string(b)); ns != "" {
			return ns, "the service account's namespace file " + serviceAccountNamespaceFile
		}
	}
	if ns := os.Getenv("POD_NAMESPACE"); ns != "" {
		return ns, "POD_NAMESPACE"
	}
	return "", ""
}

// BindFlags binds the Kubernetes-convention flags to o's fields, with o's
// current values as defaults:
//
//	--leader-elect, --leader-elect-lease-duration, --leader-elect-renew-deadline,
//	--leader-elect-retry-period, --leader-elect-resource-namespace,
//	--metrics-bind-address, --metrics-secure, --metrics-cert-dir,
//	--health-probe-bind-address, --pprof-bind-address, --drain-grace,
//	--return-to-standby, --server-side-fencing, --kubeconfig,
//	--log-format, --log-level, --print-rbac, --rbac-service-account,
//	--rbac-check
//
// A group's flags (--leader-elect-resource-name, --shards) are
// Group.BindFlags'.
//
// When fs already defines --kubeconfig (controller-runtime defines one on
// flag.CommandLine), BindFlags leaves it alone and LoadConfig reads it
// whenever Kubeconfig is empty.
//
// For spf13/pflag, bind to a flag.FlagSet and add it with AddGoFlagSet.
func (o *Options) BindFlags(fs *flag.FlagSet) {
	if f := fs.Lookup("kubeconfig"); f != nil {
		o.kubeconfigFlag = f.Value
	} else {
		fs.StringVar(&o.Kubeconfig, "kubeconfig", o.Kubeconfig,
			"Kubeconfig file to reach the apiserver with (default: $KUBECONFIG, then ~/.kube/config, then the in-cluster configuration).")
	}
	// The flags are defined on a scratch set, then moved to fs behind a
	// value that records a malformed value instead of failing the parse:
	// flag.Parse stops at its first error, and a user who mistyped three
	// flags should learn of all three in one run (LoadConfig and New
	// report them, with every other problem of the options).
	if o.flagErrs == nil {
		o.flagErrs = new([]error)
	}
	scratch := flag.NewFlagSet("", flag.ContinueOnError)
	scratch.BoolVar(&o.LeaderElect, "leader-elect", o.LeaderElect,
		"Run workers only while holding the Lease; off runs them at once (one replica only).")
	scratch.DurationVar(&o.LeaseDuration, flagName(electionflags.LeaseDuration), o.LeaseDuration,
		"How long a standby waits, on its own clock, after the lease last changed before taking it over.")
	scratch.DurationVar(&o.RenewDeadline, flagName(electionflags.RenewDeadline), o.RenewDeadline,
		"How long the leader keeps leading (and writing) while renews fail. Must be below the lease duration.")
	scratch.DurationVar(&o.RetryPeriod, flagName(electionflags.RetryPeriod), o.RetryPeriod,
		"Interval between renews. The renew deadline must exceed 1.2 times it.")
	scratch.StringVar(&o.LeaseNamespace, flagName(electionflags.ResourceNamespace), o.LeaseNamespace,
		`Namespace of the Lease (default: the pod's namespace; outside a pod, the kubeconfig context's namespace, else "default").`)
	scratch.StringVar(&o.MetricsBindAddress, "metrics-bind-address", o.MetricsBindAddress,
		`Address serving /metrics; "0" turns it off. The default is loopback only: in a pod, pass :8080.`)
	scratch.BoolVar(&o.MetricsSecure, "metrics-secure", o.MetricsSecure,
		"Serve /metrics over HTTPS, each scrape authenticated (TokenReview) and authorized to get /metrics (SubjectAccessReview) by the apiserver.")
	scratch.StringVar(&o.MetricsCertDir, "metrics-cert-dir", o.MetricsCertDir,
		"Folder of tls.crt and tls.key for --metrics-secure, reloaded when they change (default: a self-signed certificate made in memory).")
	scratch.StringVar(&o.HealthProbeBindAddress, "health-probe-bind-address", o.HealthProbeBindAddress,
		`Address serving /healthz and /readyz; "0" turns it off. The default is loopback only: in a pod, pass :8081.`)
	scratch.StringVar(&o.PprofBindAddress, "pprof-bind-address", o.PprofBindAddress,
		`Address serving pprof under /debug/pprof/, unauthenticated; "0" or "" (the default) turns it off. Keep it on loopback.`)
	scratch.DurationVar(&o.DrainGrace, "drain-grace", o.DrainGrace,
		"On shutdown, how long running handlers may take to finish before the lease is released.")
	scratch.BoolVar(&o.ReturnToStandby, "return-to-standby", o.ReturnToStandby,
		"On a lost lease, stop the workers and campaign again with warm caches instead of exiting.")
	scratch.BoolVar(&o.ServerSideFencing, "server-side-fencing", o.ServerSideFencing,
		"Name this replica as the field manager of its writes, so that the rein-fencing ValidatingAdmissionPolicy refuses writes that arrive after its term ended (install the policy first).")
	o.bindLogFlags(scratch)
	o.bindRBACFlags(scratch)
	moveFlags(scratch, fs, o.flagErrs)
}

// moveFlags defines every flag of scratch on fs behind a value that records
// a malformed value in errs instead of failing the parse.
func moveFlags(scratch, fs *flag.FlagSet, errs *[]error) {
	scratch.VisitAll(func(f *flag.Flag) {
		fs.Var(&recordingValue{Value: f.Value, name: f.Name, errs: errs}, f.Name, f.Usage)
	})
}

// recordingValue is a flag value that records a malformed value in errs
// and lets the parse go on.
type recordingValue struct {
	flag.Value
	name string
	errs *[]error
}

func (v *recordingValue) Set(s string) error {
	old := v.Value.String()
	if err := v.Value.Set(s); err != nil {
		// flag's values store their zero on a failed Set: keep the
		// default instead, so the remaining checks see sane values.
		_ = v.Value.Set(old)
		want := err.Error()
		if g, ok := v.Value.(flag.Getter); ok {
			switch g.Get().(type) {
			case time.Duration:
				want = "not a duration: want e.g. 15s, 500ms or 1m30s"
			case bool:
				want = "not a boolean: want true or false"
			}
		}
		*v.errs = append(*v.errs, fmt.Errorf("--%s=%q: %s", v.name, s, want))
	}
	return nil
}

func (v *recordingValue) String() string {
	if v == nil || v.Value == nil {
		return "" // the zero value flag.PrintDefaults makes
	}
	return v.Value.String()
}

// IsBoolFlag keeps --leader-elect and --return-to-standby usable without
// a value.
func (v *recordingValue) IsBoolFlag() bool {
	b, ok := v.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

func flagName(f string) string { return strings.TrimPrefix(f, "--") }

// validate reports every problem with o and the groups' lease names,
// naming the flag to fix.
func (o *Options) validate(leaseNames []string) error {
	errs := o.settingsErrors(leaseNames)
	if o.Config == nil {
		errs = append([]error{errors.New("no rest.Config: load one from a kubeconfig or the cluster (Options.Config)")}, errs...)
	}
	return errors.Join(errs...)
}

// settingsErrors reports every problem of the settings, from malformed
// flag values to timings that do not fit together: all but the
// rest.Config, so that LoadConfig can report them too.
func (o *Options) settingsErrors(leaseNames []string) []error {
	var errs []error
	if o.flagErrs != nil {
		errs = append(errs, *o.flagErrs...)
	}
	errs = append(errs, o.logFlagErrors()...)
	if o.tracingErr != nil {
		errs = append(errs, fmt.Errorf("tracing: %w", o.tracingErr))
	}
	if o.DrainGrace < 0 {
		errs = append(errs, fmt.Errorf("--drain-grace is %v: it must not be negative", o.DrainGrace))
	}
	for _, a := range []struct{ flag, addr string }{
		{"metrics-bind-address", o.MetricsBindAddress}, {"health-probe-bind-address", o.HealthProbeBindAddress},
		{"pprof-bind-address", o.PprofBindAddress},
	} {
		if err := checkBindAddress(a.addr); err != nil {
			errs = append(errs, fmt.Errorf("--%s=%q: %w", a.flag, a.addr, err))
		}
	}
	errs = append(errs, o.httpErrors()...)
	if !o.LeaderElect {
		// Unused without an election, but a negative value is a mistake
		// all the same: say so rather than accept it silently.
		for _, d := range []struct {
			flag string
			v    time.Duration
		}{{electionflags.LeaseDuration, o.LeaseDuration}, {electionflags.RenewDeadline, o.RenewDeadline}, {electionflags.RetryPeriod, o.RetryPeriod}} {
			if d.v < 0 {
				errs = append(errs, fmt.Errorf("%s is %v: it must not be negative", d.flag, d.v))
			}
		}
		if o.ServerSideFencing {
			errs = append(errs, errors.New("--server-side-fencing needs --leader-elect: without a Lease there is no holder to check writes against"))
		}
		return errs
	}
	namespace := o.LeaseNamespace
	if namespace == "" {
		namespace = DefaultLeaseNamespace // defaulted later; nothing to check yet
	}
	for _, name := range slices.Compact(slices.Sorted(slices.Values(leaseNames))) {
		cfg := leader.Config{
			Namespace: namespace, Name: name, Identity: "x",
			LeaseDuration: o.LeaseDuration, RenewDeadline: o.RenewDeadline, RetryPeriod: o.RetryPeriod,
		}
		if err := cfg.Validate(); err != nil {
			errs = append(errs, err)
		}
	}
	if strings.TrimSpace(o.IdentityBase) == "" {
		errs = append(errs, errors.New("the identity base is empty: set POD_NAME (downward API) or Options.IdentityBase"))
	} else if o.ServerSideFencing {
		// The identity gets a 17-character suffix (leader.NewIdentity).
		for _, name := range slices.Compact(slices.Sorted(slices.Values(leaseNames))) {
			if _, err := leader.FencingFieldManager(namespace, name, o.IdentityBase+"_0123456789abcdef"); err != nil {
				errs = append(errs, fmt.Errorf("--server-side-fencing: %w", err))
			}
		}
	}
	return errs
}

// checkBindAddress checks the form of a listen address ("" and "0" mean
// off); whether it can be bound is learnt when New binds it.
func checkBindAddress(addr string) error {
	if disabled(addr) {
		return nil
	}
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%w: want host:port or :port, or \"0\" for off", err)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("port %q is not a number from 0 to 65535", port)
	}
	return nil
}

// connectionChecks are the HTTP/2 health check of the clients start builds
// for leases: a dead connection is closed within the renew deadline, so a
// healed partition is noticed by leaders, standbys and shard members
// alike before a leader's renew deadline passes (internal/connhealth).
func (o *Options) connectionChecks() (readIdle, ping time.Duration) {
	return connhealth.Timeouts(o.RenewDeadline, o.RetryPeriod)
}

// builtinChecks are the names of the replica's own checks of /healthz and
// /readyz, which the program's checks cannot take.
var builtinChecks = []string{"ping", "lease", "caches", "webhook", "rbac"}

// httpErrors reports mistakes of the HTTP endpoints' settings: secure
// metrics, pprof's address, the program's checks.
func (o *Options) httpErrors() []error {
	var errs []error
	if o.MetricsCertDir != "" && !o.MetricsSecure {
		errs = append(errs, fmt.Errorf("--metrics-cert-dir=%q needs --metrics-secure: /metrics is plain HTTP without it", o.MetricsCertDir))
	}
	if o.MetricsSecure && !disabled(o.MetricsBindAddress) && o.HealthProbeBindAddress == o.MetricsBindAddress {
		errs = append(errs, fmt.Errorf("--health-probe-bind-address and --metrics-bind-address are both %q: with --metrics-secure, /metrics wants a token the kubelet's probes do not carry; give the probes an address of their own", o.MetricsBindAddress))
	}
	if !disabled(o.PprofBindAddress) {
		for _, a := range []struct{ flag, addr string }{
			{"metrics-bind-address", o.MetricsBindAddress}, {"health-probe-bind-address", o.HealthProbeBindAddress},
		} {
			if a.addr == o.PprofBindAddress {
				errs = append(errs, fmt.Errorf("--pprof-bind-address and --%s are both %q: pprof is served on an address of its own", a.flag, a.addr))
			}
		}
	}
	for _, c := range []struct {
		kind   string
		checks map[string]func(*http.Request) error
	}{{"Health", o.HealthChecks}, {"Ready", o.ReadyChecks}} {
		for _, name := range slices.Sorted(maps.Keys(c.checks)) {
			what := fmt.Sprintf("%s check %q (Options.%sChecks)", strings.ToLower(c.kind), name, c.kind)
			switch {
			case strings.TrimSpace(name) == "" || strings.ContainsAny(name, " \t\r\n"):
				errs = append(errs, fmt.Errorf("%s: want a name without spaces", what))
			case slices.Contains(builtinChecks, name):
				errs = append(errs, fmt.Errorf("%s: the name of one of the replica's own checks (%s): choose another", what, strings.Join(builtinChecks, ", ")))
			case c.checks[name] == nil:
				errs = append(errs, fmt.Errorf("%s: the function is nil", what))
			}
		}
	}
	return errs
}
