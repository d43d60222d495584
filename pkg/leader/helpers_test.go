package leader_test

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/rein-k8s/rein/internal/testkit"
	"github.com/rein-k8s/rein/pkg/fence"
	"github.com/rein-k8s/rein/pkg/leader"
	"github.com/rein-k8s/rein/pkg/testenv"
)

// fenceErr is nil while h allows writes, and why not otherwise.
func fenceErr(h fence.Hold) error {
	_, err := h.Deadline()
	return err
}

// One control plane serves every integration test of the package; it is
// started by the first test that needs it, so that unit tests run alone
// do not wait for it.
var controlPlane = testkit.LazyEnv{Options: testenv.Options{Audit: true}}

func TestMain(m *testing.M) { os.Exit(controlPlane.Main(m)) }

const namespace = "default"

var leaseCounter atomic.Int32

// leaseName is a fresh lease name per test, so tests share nothing.
func leaseName(t *testing.T) string {
	name := strings.ToLower(regexp.MustCompile(`[^A-Za-z0-9]+`).ReplaceAllString(t.Name(), "-"))
	return fmt.Sprintf("l%d-%.50s", leaseCounter.Add(1), strings.Trim(name, "-"))
}

// uniqueName makes names of cluster-wide things (users, roles) unique per
// run, since -count=N reuses the control plane.
func uniqueName(base string) string {
	return fmt.Sprintf("%s-%d", base, leaseCounter.Add(1))
}

type timings struct{ lease, renew, retry time.Duration }

var (
	defaultTimings = timings{} // 15s/10s/2s
	shortTimings   = timings{2 * time.Second, 1500 * time.Millisecond, 300 * time.Millisecond}
)

// replica is one elector with its own client and log.
type replica struct {
	*leader.Elector
	name string
	log  *testkit.SyncBuffer
}

type replicaOptions struct {
	timings timings
	config  *rest.Config                              // default: admin
	wrap    func(http.RoundTripper) http.RoundTripper // e.g. a cut or a counter
	id      string                                    // default: NewIdentity(name)
}

func newReplica(t *testing.T, lease, name string, o replicaOptions) *replica {
	t.Helper()
	cfg := o.config
	if cfg == nil {
		cfg = controlPlane.Get(t).Config()
	}
	cfg = rest.CopyConfig(cfg)
	if o.wrap != nil {
		cfg.Wrap(o.wrap)
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	id := o.id
	if id == "" {
		if id, err = leader.NewIdentity(name); err != nil {
			t.Fatal(err)
		}
	}
	logger, buf := testkit.Logger(t, "log of "+name)
	e, err := leader.New(leader.Config{
		Client: cs.CoordinationV1(), Namespace: namespace, Name: lease, Identity: id,
		LeaseDuration: o.timings.lease, RenewDeadline: o.timings.renew, RetryPeriod: o.timings.retry,
		Logger: logger.WithField("replica", name),
	})
	if err != nil {
		t.Fatal(err)
	}
	return &replica{Elector: e, name: name, log: buf}
}

// twoReplicas are replica-a and replica-b of lease, with the timings.
func twoReplicas(t *testing.T, lease string, timings timings) (a, b *replica) {
	t.Helper()
	return newReplica(t, lease, "replica-a", replicaOptions{timings: timings}),
		newReplica(t, lease, "replica-b", replicaOptions{timings: timings})
}

// campaignResult is what a Campaign returned, and when.
type campaignResult struct {
	term *leader.Term
	err  error
	at   time.Time
}

// campaignAsync campaigns in a goroutine. Terms won are released when the
// test ends (after t.Context is cancelled, which ends them).
func (r *replica) campaignAsync(t *testing.T) <-chan campaignResult {
	ch := make(chan campaignResult, 1)
	go func() {
		term, err := r.Campaign(t.Context())
		ch <- campaignResult{term, err, time.Now()}
	}()
	return ch
}

func (r *replica) campaign(t *testing.T) *leader.Term {
	t.Helper()
	res := await(t, r.name+" wins the campaign", r.campaignAsync(t), 20*time.Second)
	if res.err != nil {
		t.Fatalf("%s: Campaign: %v", r.name, res.err)
	}
	releaseAtEnd(t, res.term)
	return res.term
}

func releaseAtEnd(t *testing.T, term *leader.Term) { testkit.ReleaseAtEnd(t, term) }

func await[T any](t *testing.T, what string, ch <-chan T, timeout time.Duration) T {
	t.Helper()
	return testkit.Receive(t, ch, timeout, what)
}

// awaitTerm waits up to timeout for the Campaign of ch to win, and
// releases its term when the test ends.
func awaitTerm(t *testing.T, what string, ch <-chan campaignResult, timeout time.Duration) *leader.Term {
	t.Helper()
	r := await(t, what, ch, timeout)
	if r.err != nil {
		t.Fatal(r.err)
	}
	releaseAtEnd(t, r.term)
	return r.term
}

// expectNothing fails if ch delivers within d: it checks that something
// does NOT happen over a period, which only waiting can show.
func expectNothing[T any](t *testing.T, what string, ch <-chan T, d time.Duration) {
	t.Helper()
	select {
	case v := <-ch:
		t.Fatalf("%s: %+v", what, v)
	case <-time.After(d):
	}
}

// eventually polls external state (the apiserver, an elector's view of it)
// until cond holds.
func eventually(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	testkit.Eventually(t, timeout, 5*time.Millisecond, what, cond)
}

// watchFences checks every 2ms, until the test ends, that no two of the
// fences are open at once, and also runs extra checks that return a
// violation message.
func watchFences(t *testing.T, replicas []*replica, extra ...func() string) {
	stop := make(chan struct{})
	done := make(chan struct{})
	var violation atomic.Value
	go func() {
		defer close(done)
		tick := time.NewTicker(2 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			var open []string
			for _, r := range replicas {
				if fenceErr(r.Fence()) == nil {
					open = append(open, r.name)
				}
			}
			if len(open) > 1 {
				violation.CompareAndSwap(nil, fmt.Sprintf("%v: fences of %v open at once", time.Now().Format(time.StampMicro), open))
			}
			for _, check := range extra {
				if v := check(); v != "" {
					violation.CompareAndSwap(nil, v)
				}
			}
		}
	}()
	t.Cleanup(func() {
		close(stop)
		<-done
		if v := violation.Load(); v != nil {
			t.Errorf("two leaders: %s", v)
		}
	})
}

// cutTransport passes requests, or fails them, or holds them until their
// context ends: a network cut the test can switch.
type cutTransport struct {
	next http.RoundTripper
	mode atomic.Int32
}

const (
	pass = iota
	fail
	hang
)

var errCut = errors.New("test: network cut")

func (c *cutTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	switch c.mode.Load() {
	case fail:
		return nil, errCut
	case hang:
		<-req.Context().Done()
		return nil, req.Context().Err()
	}
	return c.next.RoundTrip(req)
}

func (c *cutTransport) wrap(next http.RoundTripper) http.RoundTripper {
	c.next = next
	return c
}

// countingTransport records every request.
type countingTransport struct {
	next http.RoundTripper
	mu   sync.Mutex
	reqs []string
}

func (c *countingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	verb := req.Method
	switch {
	case req.Method == http.MethodGet && req.URL.Query().Get("watch") == "true":
		verb = "WATCH"
	case req.Method == http.MethodGet && strings.HasSuffix(req.URL.Path, "/leases"):
		verb = "LIST"
	}
	c.mu.Lock()
	c.reqs = append(c.reqs, verb+" "+req.URL.Path)
	c.mu.Unlock()
	return c.next.RoundTrip(req)
}

func (c *countingTransport) wrap(next http.RoundTripper) http.RoundTripper {
	c.next = next
	return c
}

func (c *countingTransport) requests() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.reqs...)
}

func adminClient(t *testing.T) kubernetes.Interface {
	t.Helper()
	cs, err := kubernetes.NewForConfig(controlPlane.Get(t).Config())
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

func getLease(t *testing.T, name string) *coordinationv1.Lease {
	t.Helper()
	l, err := adminClient(t).CoordinationV1().Leases(namespace).Get(t.Context(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func holder(l *coordinationv1.Lease) string {
	if l.Spec.HolderIdentity == nil {
		return ""
	}
	return *l.Spec.HolderIdentity
}

// leaseChange is a change of the lease record seen by the test's own watch.
type leaseChange struct {
	at     time.Time
	holder string
}

// recordLeaseChanges watches the lease as a standby would and records when
// each change of its spec arrived.
func recordLeaseChanges(t *testing.T, name string) func() []leaseChange {
	t.Helper()
	w, err := adminClient(t).CoordinationV1().Leases(namespace).Watch(t.Context(), metav1.ListOptions{FieldSelector: "metadata.name=" + name})
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu      sync.Mutex
		changes []leaseChange
	)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ev := range w.ResultChan() {
			if l, ok := ev.Object.(*coordinationv1.Lease); ok {
				mu.Lock()
				changes = append(changes, leaseChange{time.Now(), holder(l)})
				mu.Unlock()
			}
		}
	}()
	t.Cleanup(func() { w.Stop(); <-done })
	return func() []leaseChange {
		mu.Lock()
		defer mu.Unlock()
		return append([]leaseChange(nil), changes...)
	}
}

// grantLeases gives user the verbs on leases in the namespace, and waits
// until the authorizer applies the grant.
func grantLeases(t *testing.T, user *testenv.User, verbs ...string) {
	t.Helper()
	admin := adminClient(t)
	name := "leases-" + strings.ReplaceAll(user.Name, ":", "-")
	role := &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace},
		Rules:      []rbacv1.PolicyRule{{APIGroups: []string{"coordination.k8s.io"}, Resources: []string{"leases"}, Verbs: verbs}},
	}
	if _, err := admin.RbacV1().Roles(namespace).Create(t.Context(), role, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	binding := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: name},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: "User", Name: user.Name}},
	}
	if _, err := admin.RbacV1().RoleBindings(namespace).Create(t.Context(), binding, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	cs, err := user.Clientset()
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "the RBAC grant applies", 10*time.Second, func() bool {
		_, err := cs.CoordinationV1().Leases(namespace).List(t.Context(), metav1.ListOptions{})
		return !apierrors.IsForbidden(err)
	})
}
