package leader

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rein-k8s/rein/pkg/fence"

	"github.com/sirupsen/logrus"
	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	clocktesting "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"

	"github.com/rein-k8s/rein/internal/testkit"
)

// These tests run the elector against client-go's fake clientset and a fake
// clock, so that times can be checked exactly. They live inside the package
// to read the fence's deadline, which the API does not expose.

// testLogger logs into a buffer that is printed when the test fails.
func testLogger(t *testing.T) (*logrus.Entry, *testkit.SyncBuffer) {
	return testkit.Logger(t, "elector log")
}

var epoch = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

func newFakeElector(t *testing.T, objs ...runtime.Object) (*Elector, *fake.Clientset, *clocktesting.FakeClock) {
	t.Helper()
	cs := fake.NewClientset(objs...)
	fc := clocktesting.NewFakeClock(epoch)
	logger, _ := testLogger(t)
	e, err := New(Config{
		Client: cs.CoordinationV1(), Namespace: "ns", Name: "lease", Identity: "me_0123",
		Clock: fc, Logger: logger,
	})
	if err != nil {
		t.Fatal(err)
	}
	return e, cs, fc
}

// releaseAtEnd stops the term's goroutines when the test ends.
func releaseAtEnd(t *testing.T, term *Term) { testkit.ReleaseAtEnd(t, term) }

// eventually polls cond until it holds or 10s pass. It waits for
// goroutines reacting to a fake clock step, which signal nothing.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testkit.Eventually(t, 10*time.Second, time.Millisecond, what, cond)
}

// campaignResult is what a Campaign returned.
type campaignResult struct {
	term *Term
	err  error
}

// campaignAsync runs e's Campaign; the channel has what it returned.
func campaignAsync(t *testing.T, e *Elector) <-chan campaignResult {
	ch := make(chan campaignResult, 1)
	go func() {
		term, err := e.Campaign(t.Context())
		ch <- campaignResult{term, err}
	}()
	return ch
}

// awaitTerm waits up to 10s for the Campaign of ch to win, and releases
// its term when the test ends.
func awaitTerm(t *testing.T, what string, ch <-chan campaignResult) *Term {
	t.Helper()
	r := testkit.Receive(t, ch, 10*time.Second, what)
	if r.err != nil {
		t.Fatal(r.err)
	}
	releaseAtEnd(t, r.term)
	return r.term
}

func campaign(t *testing.T, e *Elector) *Term {
	t.Helper()
	term, err := e.Campaign(t.Context())
	if err != nil {
		t.Fatalf("Campaign: %v", err)
	}
	releaseAtEnd(t, term)
	return term
}

func TestFenceOpensOnRenewAndClosesExactlyAtRenewDeadline(t *testing.T) {
	e, cs, fc := newFakeElector(t)
	var failUpdates atomic.Bool
	cs.PrependReactor("update", "leases", func(k8stesting.Action) (bool, runtime.Object, error) {
		if failUpdates.Load() {
			return true, nil, apierrors.NewInternalError(errors.New("injected renew failure"))
		}
		return false, nil, nil
	})

	if e.fence.Err() == nil {
		t.Fatal("fence open before any campaign")
	}
	term := campaign(t, e) // the lease does not exist: created at epoch
	if e.fence.Err() != nil {
		t.Fatalf("fence closed right after acquiring: %v", e.fence.Err())
	}

	// A successful renew at epoch+RetryPeriod moves the deadline to
	// epoch+RetryPeriod+RenewDeadline. Wait for the renew and watchdog
	// timers to be set before stepping.
	eventually(t, "the renew and watchdog timers are set", func() bool { return fc.Waiters() >= 2 })
	fc.Step(e.retryPeriod)
	renewedAt := epoch.Add(e.retryPeriod)
	eventually(t, "the renew is counted", func() bool { _, last := e.fence.State(); return last.Equal(renewedAt) })

	failUpdates.Store(true)
	deadline := renewedAt.Add(e.renewDeadline)
	fc.SetTime(deadline.Add(-time.Nanosecond))
	if err := e.fence.Err(); err != nil {
		t.Fatalf("fence closed 1ns before the deadline: %v", err)
	}
	if err := e.Check(nil); err != nil {
		t.Fatalf("health check fails while leading within the deadline: %v", err)
	}
	fc.SetTime(deadline)
	err := e.fence.Err()
	if !errors.Is(err, fence.ErrFenced) {
		t.Fatalf("fence at the deadline: got %v, want ErrFenced", err)
	}
	for _, want := range []string{"ns/lease", "last renewed by this replica 10s ago", "renew deadline 10s"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("fence error %q does not mention %q", err, want)
		}
	}
	select {
	case <-term.Context().Done():
	case <-time.After(10 * time.Second):
		t.Fatal("Term.Context not cancelled when the fence closed")
	}
	if !errors.Is(term.Err(), ErrLeadershipLost) {
		t.Fatalf("Term.Err() = %v, want ErrLeadershipLost", term.Err())
	}
	if !errors.Is(context.Cause(term.Context()), ErrLeadershipLost) {
		t.Fatalf("context cause %v, want ErrLeadershipLost", context.Cause(term.Context()))
	}
}

// A sub-second RetryPeriod writes renews that a client-go standby, which
// compares records to the second, cannot tell apart; the fence must count
// only the first renew of each second.
func TestFenceCountsOnlyRenewsAClientGoStandbySees(t *testing.T) {
	cs := fake.NewClientset()
	fc := clocktesting.NewFakeClock(epoch) // whole second
	logger, _ := testLogger(t)
	e, err := New(Config{
		Client: cs.CoordinationV1(), Namespace: "ns", Name: "lease", Identity: "me_0123",
		LeaseDuration: 2 * time.Second, RenewDeadline: 1500 * time.Millisecond, RetryPeriod: 300 * time.Millisecond,
		Clock: fc, Logger: logger,
	})
	if err != nil {
		t.Fatal(err)
	}
	campaign(t, e)
	step := func(want time.Time) {
		t.Helper()
		eventually(t, "the renew timer is set", func() bool { return fc.Waiters() >= 2 })
		before := len(cs.Actions())
		fc.Step(300 * time.Millisecond)
		eventually(t, "the renew is sent", func() bool { return len(cs.Actions()) > before })
		eventually(t, "the renew is processed", func() bool { _, last := e.fence.State(); return last.Equal(want) })
	}
	step(epoch)                              // renew at .3: same second as the acquire at .0
	step(epoch)                              // .6
	step(epoch)                              // .9
	step(epoch.Add(1200 * time.Millisecond)) // 1.2: a new second, counted
	step(epoch.Add(1200 * time.Millisecond)) // 1.5
}

func TestHealthCheckFailsWhenTheRenewLoopIsStuck(t *testing.T) {
	e, _, fc := newFakeElector(t)
	if err := e.Check(nil); err != nil {
		t.Fatalf("standby unhealthy: %v", err)
	}
	// Simulate a live term whose goroutines never run: open the fence
	// directly and let time pass.
	e.fence.Open(fc.Now(), fence.Token{})
	fc.Step(e.leaseDuration)
	if err := e.Check(nil); err != nil {
		t.Fatalf("unhealthy at exactly LeaseDuration: %v", err)
	}
	fc.Step(time.Millisecond)
	err := e.Check(nil)
	if err == nil || !strings.Contains(err.Error(), "has not renewed it for 15.001s") {
		t.Fatalf("Check after LeaseDuration without renew: %v", err)
	}
	e.fence.Close("test")
	if err := e.Check(nil); err != nil {
		t.Fatalf("unhealthy after the term ended: %v", err)
	}
}

func heldLease(holder string, seconds int32) *coordinationv1.Lease {
	// The record's times are far in the past: a standby must not care.
	old := metav1.NewMicroTime(time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC))
	return &coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{Name: "lease", Namespace: "ns"},
		Spec: coordinationv1.LeaseSpec{
			HolderIdentity: ptr.To(holder), LeaseDurationSeconds: ptr.To(seconds),
			AcquireTime: &old, RenewTime: &old, LeaseTransitions: ptr.To[int32](4),
		},
	}
}

func TestStandbyWaitsLeaseDurationOnItsOwnClock(t *testing.T) {
	e, cs, fc := newFakeElector(t, heldLease("other_1", 15))
	done := campaignAsync(t, e)
	// The expiry timer is armed when the standby has seen the lease.
	eventually(t, "the standby saw the holder", func() bool { return e.Leader() == "other_1" })
	eventually(t, "the expiry timer is set", func() bool { return fc.HasWaiters() })
	fc.Step(15*time.Second - time.Nanosecond)
	select {
	case r := <-done:
		t.Fatalf("took the lease before LeaseDuration passed: %v %v", r.term, r.err)
	default:
	}
	for _, a := range cs.Actions() {
		if a.GetVerb() != "list" && a.GetVerb() != "watch" {
			t.Fatalf("standby sent %s before the lease expired", a.GetVerb())
		}
	}
	fc.Step(time.Nanosecond)
	awaitTerm(t, "the standby to take the expired lease", done)
	got, err := cs.CoordinationV1().Leases("ns").Get(t.Context(), "lease", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if holderOf(got) != "me_0123" || *got.Spec.LeaseTransitions != 5 || *got.Spec.LeaseDurationSeconds != 15 {
		t.Fatalf("record after takeover: %+v", got.Spec)
	}
	if !got.Spec.AcquireTime.Time.Equal(epoch.Add(15 * time.Second)) {
		t.Fatalf("acquireTime %v, want the local clock's %v", got.Spec.AcquireTime, epoch.Add(15*time.Second))
	}
}

func TestReleasedLeaseIsTakenAtOnce(t *testing.T) {
	e, _, _ := newFakeElector(t, heldLease("", 1))
	term := campaign(t, e) // no clock step: free at once
	if e.Leader() != "me_0123" || term.Err() != nil {
		t.Fatalf("leader %q, err %v", e.Leader(), term.Err())
	}
}

func TestSameIdentityFromAnotherProcessIsNotTakenAtOnce(t *testing.T) {
	// The lease names this elector's identity, but a record it did not
	// write: another process uses the identity. Wait like for any holder.
	e, _, fc := newFakeElector(t, heldLease("me_0123", 15))
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		term, err := e.Campaign(ctx)
		if err == nil {
			releaseAtEnd(t, term)
		}
		done <- err
	}()
	eventually(t, "the expiry timer is set", func() bool { return fc.HasWaiters() })
	select {
	case err := <-done:
		t.Fatalf("Campaign returned (%v) for a lease held under the same identity by someone else", err)
	default:
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Campaign after cancel: %v", err)
	}
}

func TestLeaseSecondsRoundsUp(t *testing.T) {
	for d, want := range map[time.Duration]int32{time.Second: 1, 1500 * time.Millisecond: 2, 15 * time.Second: 15, 1: 1} {
		if got := leaseSeconds(d); got != want {
			t.Errorf("leaseSeconds(%v) = %d, want %d", d, got, want)
		}
	}
}

func TestUnreachableAPIServerIsRetriedAndLoggedEveryFewSeconds(t *testing.T) {
	cs := fake.NewClientset()
	fc := clocktesting.NewFakeClock(epoch)
	logger, logs := testLogger(t)
	var down atomic.Bool
	down.Store(true)
	cs.PrependReactor("list", "leases", func(k8stesting.Action) (bool, runtime.Object, error) {
		if down.Load() {
			return true, nil, errors.New("dial tcp 10.96.0.1:443: connect: connection refused")
		}
		return false, nil, nil
	})
	e, err := New(Config{Client: cs.CoordinationV1(), Namespace: "ns", Name: "lease", Identity: "me_0123", Clock: fc, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	won := campaignAsync(t, e)
	// 30s of fake time with the apiserver down, in RetryPeriod steps.
	for range 15 {
		eventually(t, "the retry timer is set", fc.HasWaiters)
		fc.Step(e.retryPeriod)
	}
	eventually(t, "the retry timer is set", fc.HasWaiters)
	lines := strings.Count(logs.String(), "cannot list lease ns/lease: retrying")
	// One line at once, then one per failureLogInterval (5s): not one per retry.
	if lines < 5 || lines > 7 {
		t.Fatalf("%d log lines for 30s of failures, want about one per 5s:\n%s", lines, logs.String())
	}
	if !strings.Contains(logs.String(), "connection refused") || !strings.Contains(logs.String(), "failingFor=") {
		t.Fatalf("failure log lacks the error or how long it lasts:\n%s", logs.String())
	}
	select {
	case <-won:
		t.Fatal("Campaign returned while the apiserver is down")
	default:
	}

	down.Store(false)
	fc.Step(2 * e.retryPeriod) // beyond the jittered backoff
	awaitTerm(t, "Campaign to win once the apiserver was back", won)
	if !strings.Contains(logs.String(), "reading the lease again") {
		t.Fatalf("no recovery line in the log:\n%s", logs.String())
	}
}
