package start

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"
	"k8s.io/client-go/rest"

	"github.com/rein-k8s/rein/pkg/leader"
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
	// LeaseName and LeaseNamespace locate the Lease (the first group's; see
	// Group.LeaseName). An empty LeaseNamespace is defaulted when the
	// replica starts: to the namespace of the kubeconfig context LoadConfig
	// loaded, else "default" (see the package documentation).
	LeaseName, LeaseNamespace string
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

	// DrainGrace bounds the wait for running handlers on shutdown; zero
	// means DefaultDrainGrace.
	DrainGrace time.Duration
	// ReturnToStandby, on a lost lease, stops the workers and campaigns
	// again with warm caches instead of ending the replica. Off by default:
	// a replica that lost its lease without asking is often unwell (paused,
	// cut off, overloaded), and a restart is the safer cure.
	ReturnToStandby bool

	// OnLeader hooks run in their own goroutines when this replica starts
	// leading (the first group's); their context ends when leadership does.
	OnLeader []func(ctx context.Context) error

	// Registry serves /metrics; the election registers its metrics there.
	// Pass the same registry as framework.Options.Registerer to serve the
	// engine's metrics too. Nil means a new registry with Go and process
	// collectors.
	Registry *prometheus.Registry
	// Logger receives the replica's logs; nil means logrus's standard
	// logger.
	Logger *logrus.Entry

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
// on 127.0.0.1:8080 and probes on 127.0.0.1:8081. With LoadConfig (which
// reads KUBECONFIG and the kubeconfig files), this is the one place rein
// reads the environment.
func NewOptions() Options {
	o := Options{
		LeaderElect:            true,
		LeaseDuration:          leader.DefaultLeaseDuration,
		RenewDeadline:          leader.DefaultRenewDeadline,
		RetryPeriod:            leader.DefaultRetryPeriod,
		MetricsBindAddress:     DefaultMetricsBindAddress,
		HealthProbeBindAddress: DefaultHealthProbeBindAddress,
		DrainGrace:             DefaultDrainGrace,
	}
	o.podNamespace, o.podNamespaceFrom = podNamespace()
	o.LeaseNamespace = o.podNamespace
	o.IdentityBase = os.Getenv("POD_NAME")
	if o.IdentityBase == "" {
		o.IdentityBase, _ = os.Hostname()
	}
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
//	--leader-elect-retry-period, --leader-elect-resource-name,
//	--leader-elect-resource-namespace, --metrics-bind-address,
//	--health-probe-bind-address, --drain-grace, --return-to-standby,
//	--kubeconfig
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
	fs.BoolVar(&o.LeaderElect, "leader-elect", o.LeaderElect,
		"Run workers only while holding the Lease; off runs them at once (one replica only).")
	fs.DurationVar(&o.LeaseDuration, flagName(leader.FlagLeaseDuration), o.LeaseDuration,
		"How long a standby waits, on its own clock, after the lease last changed before taking it over.")
	fs.DurationVar(&o.RenewDeadline, flagName(leader.FlagRenewDeadline), o.RenewDeadline,
		"How long the leader keeps leading (and writing) while renews fail. Must be below the lease duration.")
	fs.DurationVar(&o.RetryPeriod, flagName(leader.FlagRetryPeriod), o.RetryPeriod,
		"Interval between renews. The renew deadline must exceed 1.2 times it.")
	fs.StringVar(&o.LeaseName, flagName(leader.FlagResourceName), o.LeaseName,
		"Name of the Lease the replicas elect a leader with.")
	fs.StringVar(&o.LeaseNamespace, flagName(leader.FlagResourceNamespace), o.LeaseNamespace,
		`Namespace of the Lease (default: the pod's namespace; outside a pod, the kubeconfig context's namespace, else "default").`)
	fs.StringVar(&o.MetricsBindAddress, "metrics-bind-address", o.MetricsBindAddress,
		`Address serving /metrics; "0" turns it off. The default is loopback only: in a pod, pass :8080.`)
	fs.StringVar(&o.HealthProbeBindAddress, "health-probe-bind-address", o.HealthProbeBindAddress,
		`Address serving /healthz and /readyz; "0" turns it off. The default is loopback only: in a pod, pass :8081.`)
	fs.DurationVar(&o.DrainGrace, "drain-grace", o.DrainGrace,
		"On shutdown, how long running handlers may take to finish before the lease is released.")
	fs.BoolVar(&o.ReturnToStandby, "return-to-standby", o.ReturnToStandby,
		"On a lost lease, stop the workers and campaign again with warm caches instead of exiting.")
}

func flagName(f string) string { return strings.TrimPrefix(f, "--") }

// validate reports every problem with o and the groups' lease names,
// naming the flag to fix.
func (o *Options) validate(leaseNames []string) error {
	var errs []error
	if o.Config == nil {
		errs = append(errs, errors.New("no rest.Config: load one from a kubeconfig or the cluster (Options.Config)"))
	}
	if o.DrainGrace < 0 {
		errs = append(errs, fmt.Errorf("--drain-grace is %v: it must not be negative", o.DrainGrace))
	}
	if !o.LeaderElect {
		// Unused without an election, but a negative value is a mistake
		// all the same: say so rather than accept it silently.
		for _, d := range []struct {
			flag string
			v    time.Duration
		}{{leader.FlagLeaseDuration, o.LeaseDuration}, {leader.FlagRenewDeadline, o.RenewDeadline}, {leader.FlagRetryPeriod, o.RetryPeriod}} {
			if d.v < 0 {
				errs = append(errs, fmt.Errorf("%s is %v: it must not be negative", d.flag, d.v))
			}
		}
	}
	if o.LeaderElect {
		for _, name := range slices.Compact(slices.Sorted(slices.Values(leaseNames))) {
			cfg := leader.Config{
				Namespace: o.LeaseNamespace, Name: name, Identity: "x",
				LeaseDuration: o.LeaseDuration, RenewDeadline: o.RenewDeadline, RetryPeriod: o.RetryPeriod,
			}
			if err := cfg.Validate(); err != nil {
				errs = append(errs, err)
			}
		}
		if strings.TrimSpace(o.IdentityBase) == "" {
			errs = append(errs, errors.New("the identity base is empty: set POD_NAME (downward API) or Options.IdentityBase"))
		}
	}
	return errors.Join(errs...)
}
