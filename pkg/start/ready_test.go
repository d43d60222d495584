package start_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/rein-k8s/rein/internal/netfault"
	"github.com/rein-k8s/rein/internal/testkit"
	"github.com/rein-k8s/rein/pkg/leader"
	"github.com/rein-k8s/rein/pkg/start"
)

// TestStandbyThatCannotSeeTheLeaseIsNotReady: a standby whose path to the
// apiserver is cut turns unready once it has not seen its Lease for the
// lease duration (/readyz names the cause); it stays healthy (a restart
// would not bring the apiserver back); and it is ready again when the path
// returns.
func TestStandbyThatCannotSeeTheLeaseIsNotReady(t *testing.T) {
	admin := testkit.Admin(t, env)
	ns := newNamespace(t, admin)
	o := testOptions(t, ns)

	// Another replica leads the whole time.
	other, id := otherLeads(t, admin, ns, o)

	// This replica reaches the apiserver through a proxy the test cuts.
	path, err := netfault.Start(env.Config().Host)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = path.Close() }()
	cfg := rest.CopyConfig(env.Config())
	cfg.Host = "https://" + path.Addr()
	o.Config = cfg
	f := newFactory(t, ns) // its caches read directly: they are synced
	r, stop, done := runNew(t, o, start.Group{LeaseName: testLease, Factories: []start.Starter{f}})
	defer func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	probe := func(p string) (int, string) { return get(t, "http://"+r.ProbeAddr()+p) }
	eventually(t, "the standby is ready", func() bool { code, _ := probe("/readyz"); return code == http.StatusOK })

	path.Cut()
	eventually(t, "the cut-off standby is unready", func() bool {
		code, body := probe("/readyz")
		return code == http.StatusServiceUnavailable && strings.Contains(body, "cannot see lease "+ns+"/"+testLease)
	})
	_, body := probe("/readyz")
	t.Logf("/readyz while cut off: %s", strings.TrimSpace(body))
	if code, body := probe("/healthz"); code != http.StatusOK {
		t.Fatalf("/healthz %d %q: a standby cut off from the apiserver must stay healthy", code, body)
	}

	path.Restore()
	eventually(t, "the standby is ready again", func() bool { code, _ := probe("/readyz"); return code == http.StatusOK })
	if h := other.Leader(); h != id {
		t.Fatalf("the lease moved to %q", h)
	}
}

// otherLeads makes another replica take o's Lease in ns and hold it until
// the test ends; it returns that replica and its identity.
func otherLeads(t *testing.T, admin kubernetes.Interface, ns string, o start.Options) (*leader.Elector, string) {
	t.Helper()
	id, err := leader.NewIdentity("other")
	if err != nil {
		t.Fatal(err)
	}
	other, err := leader.New(leader.Config{Client: admin.CoordinationV1(), Namespace: ns, Name: testLease, Identity: id,
		LeaseDuration: o.LeaseDuration, RenewDeadline: o.RenewDeadline, RetryPeriod: o.RetryPeriod, Logger: logrus.NewEntry(logrus.New())})
	if err != nil {
		t.Fatal(err)
	}
	termCtx, endTerm := context.WithCancel(context.Background())
	term, err := other.Campaign(termCtx)
	if err != nil {
		endTerm()
		t.Fatal(err)
	}
	t.Cleanup(func() { endTerm(); <-term.Done() })
	return other, id
}

// TestStandbyBehindABlackHoleIsReadyAgain (issue 29): a standby whose path
// to the apiserver is a black hole (connections held open, nothing
// delivered) turns unready, and once the path returns it is ready again
// within the renew deadline + 1 s, ten times in a row, with 2 s leases and
// with the default timings. Before, its dead connection waited for
// client-go's 30 s + 15 s HTTP/2 check, and a take that failed while cut
// off kept it unready after it saw the lease again (108 s measured).
func TestStandbyBehindABlackHoleIsReadyAgain(t *testing.T) {
	for _, c := range []struct {
		name                string
		lease, renew, retry time.Duration
		repetitions         int
	}{
		{"2s leases", 2 * time.Second, 1500 * time.Millisecond, 300 * time.Millisecond, 10},
		{"default timings", leader.DefaultLeaseDuration, leader.DefaultRenewDeadline, leader.DefaultRetryPeriod, 10},
	} {
		t.Run(c.name, func(t *testing.T) {
			admin := testkit.Admin(t, env)
			ns := newNamespace(t, admin)
			o := testOptions(t, ns)
			// The holder keeps the Lease with timings a loaded machine
			// cannot break (a standby that took it would be the leader
			// behind the next black hole, not a standby); the standby's
			// own timings are the ones under test.
			steady := o
			steady.LeaseDuration, steady.RenewDeadline, steady.RetryPeriod = time.Minute, 40*time.Second, 2*time.Second
			other, id := otherLeads(t, admin, ns, steady)
			o.LeaseDuration, o.RenewDeadline, o.RetryPeriod = c.lease, c.renew, c.retry
			path, err := netfault.Start(env.Config().Host)
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = path.Close() }()
			cfg := rest.CopyConfig(env.Config())
			cfg.Host = "https://" + path.Addr()
			o.Config = cfg
			r, stop, done := runNew(t, o, start.Group{LeaseName: testLease, Factories: []start.Starter{newFactory(t, ns)}})
			defer func() {
				stop()
				if err := <-done; err != nil {
					t.Errorf("Run: %v", err)
				}
			}()
			ready := func() bool { code, _ := get(t, "http://"+r.ProbeAddr()+"/readyz"); return code == http.StatusOK }
			eventually(t, "the standby is ready", ready)
			bound := c.renew + time.Second
			var worst time.Duration
			for rep := range c.repetitions {
				path.Hold(netfault.Both)
				testkit.Eventually(t, 3*c.lease+15*time.Second, 20*time.Millisecond, "the standby behind a black hole is unready", func() bool { return !ready() })
				path.Release()
				released := time.Now()
				testkit.Eventually(t, bound+30*time.Second, 20*time.Millisecond, "the standby is ready again", ready)
				took := time.Since(released)
				worst = max(worst, took)
				if took > bound {
					t.Errorf("repetition %d: ready again %v after the path returned, want ≤ renew deadline + 1s = %v", rep, took.Round(time.Millisecond), bound)
				}
				if h := other.Leader(); h != id {
					t.Fatalf("repetition %d: the lease moved to %q", rep, h)
				}
			}
			t.Logf("%d black holes: ready again at most %v after the path returned (bound %v)", c.repetitions, worst.Round(time.Millisecond), bound)
		})
	}
}
