package leader

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"
	"k8s.io/apimachinery/pkg/util/validation"
	coordinationv1client "k8s.io/client-go/kubernetes/typed/coordination/v1"
	"k8s.io/utils/clock"

	flags "github.com/rein-k8s/rein/internal/electionflags"
)

// The default timings, those of kube-controller-manager and client-go.
const (
	DefaultLeaseDuration = 15 * time.Second
	DefaultRenewDeadline = 10 * time.Second
	DefaultRetryPeriod   = 2 * time.Second
)

// Config configures an Elector.
type Config struct {
	// Client reaches the leases API, e.g. clientset.CoordinationV1(). It must
	// not be fenced (fence.Transport): the elector's own writes are what
	// opens the fence.
	Client coordinationv1client.LeasesGetter

	// Namespace and Name locate the Lease.
	Namespace, Name string
	// Identity names this replica in the Lease. It must be unique among all
	// candidates, now and in the past: use NewIdentity.
	Identity string

	// LeaseDuration is how long a standby waits, on its own clock, after it
	// last saw the lease record change before it takes the lease over.
	// Zero means DefaultLeaseDuration.
	LeaseDuration time.Duration
	// RenewDeadline is how long after the last successful renew was sent
	// the leader keeps leading (and its fence stays open) while renews fail.
	// Zero means DefaultRenewDeadline.
	RenewDeadline time.Duration
	// RetryPeriod is the interval between renew attempts. Zero means
	// DefaultRetryPeriod.
	RetryPeriod time.Duration

	// Clock is the time source; nil means the real clock. Tests pass a fake.
	Clock clock.Clock
	// Logger receives the elector's log lines; nil means
	// logrus.StandardLogger().
	Logger *logrus.Entry
	// Registerer receives the elector's metrics; nil means no metrics:
	// leader_election_master_status{name="<lease name>"} (client-go's and
	// controller-runtime's leader gauge) and rein_leader_election_* with
	// the const label lease="namespace/name", so electors of Leases of
	// different names can share one registry.
	Registerer prometheus.Registerer
}

// withDefaults returns c with zero timings replaced by the defaults.
func (c Config) withDefaults() Config {
	if c.LeaseDuration == 0 {
		c.LeaseDuration = DefaultLeaseDuration
	}
	if c.RenewDeadline == 0 {
		c.RenewDeadline = DefaultRenewDeadline
	}
	if c.RetryPeriod == 0 {
		c.RetryPeriod = DefaultRetryPeriod
	}
	return c
}

// Validate checks the lease location, the identity and the timings (zero
// timings count as their defaults). Every problem is reported, each naming
// the flag that sets the wrong value. It does not look at Client, so that a
// command can validate its flags before it builds a client.
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error

	if c.Name == "" {
		errs = append(errs, fmt.Errorf("%s: the lease name is empty", flags.ResourceName))
	} else if msgs := validation.IsDNS1123Subdomain(c.Name); len(msgs) > 0 {
		errs = append(errs, fmt.Errorf("%s: lease name %q is not valid: %s", flags.ResourceName, c.Name, strings.Join(msgs, "; ")))
	}
	if c.Namespace == "" {
		errs = append(errs, fmt.Errorf("%s: the lease namespace is empty", flags.ResourceNamespace))
	} else if msgs := validation.IsDNS1123Label(c.Namespace); len(msgs) > 0 {
		errs = append(errs, fmt.Errorf("%s: lease namespace %q is not valid: %s", flags.ResourceNamespace, c.Namespace, strings.Join(msgs, "; ")))
	}
	if strings.TrimSpace(c.Identity) == "" {
		errs = append(errs, errors.New("the identity is empty: set it with NewIdentity(POD_NAME or the hostname)"))
	}

	errs = append(errs, flags.CheckTimings(c.LeaseDuration, c.RenewDeadline, c.RetryPeriod)...)
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("leader election configuration: %w", errors.Join(errs...))
}

// NewIdentity returns base + "_" + 16 random hex digits (64 bits from
// crypto/rand). base is usually POD_NAME (from the downward API) or the
// hostname; the suffix makes the identity unique even when two processes
// share a base — two containers in one pod, a process restarted in place, a
// StatefulSet pod recreated under its old name — because an elector that
// finds its own identity in the lease treats the lease as its own.
func NewIdentity(base string) (string, error) {
	base = strings.TrimSpace(base)
	if base == "" {
		return "", errors.New("leader: identity base is empty: pass POD_NAME (downward API) or the hostname")
	}
	var suffix [8]byte
	if _, err := rand.Read(suffix[:]); err != nil {
		return "", fmt.Errorf("leader: random identity suffix: %w", err)
	}
	return base + "_" + hex.EncodeToString(suffix[:]), nil
}
