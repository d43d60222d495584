package leader_test

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/rein-k8s/rein/pkg/leader"
)

// installFencingPolicy creates the fencing policy (once per control plane)
// and a binding for lease.
func installFencingPolicy(t *testing.T, admin kubernetes.Interface, lease string) {
	t.Helper()
	ctx := t.Context()
	_, err := admin.AdmissionregistrationV1().ValidatingAdmissionPolicies().Create(ctx, leader.FencingPolicy(), metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	binding, err := leader.FencingPolicyBinding(namespace, lease)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := admin.AdmissionregistrationV1().ValidatingAdmissionPolicyBindings().Create(ctx, binding, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = admin.AdmissionregistrationV1().ValidatingAdmissionPolicyBindings().Delete(context.Background(), binding.Name, metav1.DeleteOptions{})
	})
}

// TestServerSideFencing: with the fencing policy installed, the apiserver
// admits a write whose field manager names a replica only while that
// replica holds the Lease, and refuses it once another replica took the
// Lease. The time from the new holder's acquisition (its write answered)
// to the first refusal of the old holder's writes is the window that
// server-side fencing leaves: the apiserver's parameter cache lag. It is
// measured over several handovers and logged.
func TestServerSideFencing(t *testing.T) {
	lease := leaseName(t)
	admin := adminClient(t)
	installFencingPolicy(t, admin, lease)
	a, b := twoReplicas(t, lease, shortTimings)
	manager := func(identity string) string {
		m, err := leader.FencingFieldManager(namespace, lease, identity)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	cms := admin.CoreV1().ConfigMaps(namespace)
	cmName := uniqueName("fenced")
	writeAs := func(name, identity string, n int) error {
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name}, Data: map[string]string{"n": strings.Repeat("x", n%7)}}
		_, err := cms.Update(t.Context(), cm, metav1.UpdateOptions{FieldManager: manager(identity)})
		if apierrors.IsNotFound(err) {
			_, err = cms.Create(t.Context(), cm, metav1.CreateOptions{FieldManager: manager(identity)})
		}
		return err
	}
	write := func(identity string, n int) error { return writeAs(cmName, identity, n) }
	t.Cleanup(func() {
		for _, suffix := range []string{"", "-0", "-1", "-2", "-3"} {
			_ = cms.Delete(context.Background(), cmName+suffix, metav1.DeleteOptions{})
		}
	})

	// Once the Lease exists and nobody holds it, a marked write is
	// refused (after the apiserver has loaded the new binding).
	first := a.campaign(t)
	if err := first.Release(t.Context()); err != nil {
		t.Fatal(err)
	}
	<-first.Done()
	eventually(t, "the policy refuses a write while nobody holds the lease", 30*time.Second, func() bool {
		return apierrors.IsForbidden(write(a.Identity(), 0))
	})
	err := write(a.Identity(), 0)
	if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), "does not hold lease "+namespace+"/"+lease) {
		t.Fatalf("write with no holder: %v", err)
	}
	// Writes without the marked manager are not looked at.
	if _, err := cms.Create(t.Context(), &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: cmName + "-free"}}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("an unmarked write: %v", err)
	}
	_ = cms.Delete(t.Context(), cmName+"-free", metav1.DeleteOptions{})

	// A real handover: a's term, then b's; a's marked writes are refused.
	term := a.campaign(t)
	eventually(t, "the holder's writes are admitted", 10*time.Second, func() bool { return write(a.Identity(), 1) == nil })
	if err := term.Release(t.Context()); err != nil {
		t.Fatal(err)
	}
	<-term.Done()
	term = b.campaign(t)
	eventually(t, "the new holder's writes are admitted", 10*time.Second, func() bool { return write(b.Identity(), 1) == nil })
	if err := write(a.Identity(), 2); !apierrors.IsForbidden(err) {
		t.Fatalf("the old holder's write after the handover: %v", err)
	}
	if err := term.Release(t.Context()); err != nil {
		t.Fatal(err)
	}
	<-term.Done()

	// The window: the holder changes in one write (as when a standby takes
	// an expired lease), and the old holder writes at once, as fast as it
	// can, until refused.
	leases := admin.CoordinationV1().Leases(namespace)
	setHolder := func(id string) {
		l, err := leases.Get(t.Context(), lease, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		l.Spec.HolderIdentity = &id
		if _, err := leases.Update(t.Context(), l, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	var windows []time.Duration
	totalAccepted := 0
	const handovers = 20
	old, next := "holder-a", "holder-b"
	setHolder(old)
	eventually(t, "the first holder's writes are admitted", 10*time.Second, func() bool { return write(old, 0) == nil })
	for i := range handovers {
		// The old holder writes from 4 goroutines without pause, before
		// and after the change: a write sent after the change was
		// answered and still admitted is inside the window.
		var (
			mu       sync.Mutex
			admitted []time.Time // send times of admitted writes
			refused  = make(chan struct{})
			once     sync.Once
			writers  sync.WaitGroup
		)
		stop := make(chan struct{})
		for w := range 4 {
			writers.Go(func() {
				for n := 0; ; n++ {
					select {
					case <-stop:
						return
					default:
					}
					sent := time.Now()
					err := writeAs(cmName+"-"+strconv.Itoa(w), old, n)
					switch {
					case err == nil:
						mu.Lock()
						admitted = append(admitted, sent)
						mu.Unlock()
					case apierrors.IsForbidden(err):
						once.Do(func() { close(refused) })
					case apierrors.IsConflict(err):
					default:
						t.Errorf("handover %d: %v", i, err)
						once.Do(func() { close(refused) })
						return
					}
				}
			})
		}
		setHolder(next)
		changed := time.Now()
		select {
		case <-refused:
		case <-time.After(10 * time.Second):
			t.Errorf("handover %d: the old holder's writes are still admitted 10s after the Lease changed", i)
		}
		close(stop)
		writers.Wait()
		late, window := 0, time.Duration(0)
		for _, sent := range admitted {
			if sent.After(changed) {
				late++
				window = max(window, sent.Sub(changed))
			}
		}
		windows = append(windows, window)
		totalAccepted += late
		// Refused once, refused for good; the new holder is admitted.
		for n := range 3 {
			if err := write(old, n); !apierrors.IsForbidden(err) {
				t.Fatalf("handover %d: a write of the old holder after a refusal: %v", i, err)
			}
		}
		eventually(t, "the new holder's writes are admitted", 10*time.Second, func() bool { return write(next, i) == nil })
		old, next = next, old
	}
	slices.Sort(windows)
	t.Logf("server-side fencing window (old holder's writes sent after the Lease change was answered, and still admitted): %d over %d handovers; latest such send after the change: median %v, max %v",
		totalAccepted, handovers, windows[len(windows)/2].Round(time.Microsecond), windows[len(windows)-1].Round(time.Microsecond))
}

// TestAwaitFencingPolicy: once a new term's AwaitFencingPolicy returns, the
// apiserver admits the new holder's marked writes and refuses the
// previous holder's, every time: a term that starts writing only then
// never interleaves with its predecessor's late writes.
func TestAwaitFencingPolicy(t *testing.T) {
	lease := leaseName(t)
	admin := adminClient(t)
	installFencingPolicy(t, admin, lease)
	cms := admin.CoreV1().ConfigMaps(namespace)
	cmName := uniqueName("await")
	t.Cleanup(func() { _ = cms.Delete(context.Background(), cmName, metav1.DeleteOptions{}) })
	writeAs := func(identity string) error {
		m, err := leader.FencingFieldManager(namespace, lease, identity)
		if err != nil {
			t.Fatal(err)
		}
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: cmName}, Data: map[string]string{"by": identity}}
		_, err = cms.Update(t.Context(), cm, metav1.UpdateOptions{FieldManager: m})
		if apierrors.IsNotFound(err) {
			_, err = cms.Create(t.Context(), cm, metav1.CreateOptions{FieldManager: m})
		}
		return err
	}
	replicas := []*replica{
		newReplica(t, lease, "replica-a", replicaOptions{timings: shortTimings}),
		newReplica(t, lease, "replica-b", replicaOptions{timings: shortTimings}),
	}
	term := replicas[0].campaign(t)
	// The apiserver loads a new binding asynchronously: until it does,
	// nothing is refused (and AwaitFencingPolicy cannot tell).
	eventually(t, "the policy refuses a non-holder's write", 30*time.Second, func() bool {
		return apierrors.IsForbidden(writeAs("nobody"))
	})
	probes := 0
	const handovers = 6
	for i := range handovers {
		holder := replicas[i%2]
		m, err := leader.FencingFieldManager(namespace, lease, holder.Identity())
		if err != nil {
			t.Fatal(err)
		}
		n, err := term.AwaitFencingPolicy(t.Context(), m)
		if err != nil {
			t.Fatalf("handover %d: %v", i, err)
		}
		probes += n
		if err := writeAs(holder.Identity()); err != nil {
			t.Fatalf("handover %d: the holder's write after AwaitFencingPolicy: %v", i, err)
		}
		if i > 0 {
			if err := writeAs(replicas[(i+1)%2].Identity()); !apierrors.IsForbidden(err) {
				t.Fatalf("handover %d: the previous holder's write after AwaitFencingPolicy: %v, want 403", i, err)
			}
		}
		// The holder changes: a release and the other replica's
		// acquisition, two Lease writes, as fast as the election goes.
		if err := term.Release(t.Context()); err != nil {
			t.Fatal(err)
		}
		<-term.Done()
		term = replicas[(i+1)%2].campaign(t)
	}
	t.Logf("%d handovers: AwaitFencingPolicy sent %d probes in all", handovers, probes)

	// A policy that keeps refusing (here: probes marked as a replica that
	// does not hold the Lease) is given up on after the lease duration,
	// with an error that says so, rather than leaving the term idle.
	stranger, err := leader.FencingFieldManager(namespace, lease, "stranger")
	if err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	n, err := term.AwaitFencingPolicy(t.Context(), stranger)
	if err == nil || !strings.Contains(err.Error(), "still refuses") {
		t.Fatalf("a policy that never admits: %v after %d probes", err, n)
	}
	if took := time.Since(began); took < shortTimings.lease || took > shortTimings.lease+5*time.Second {
		t.Errorf("gave up after %v, want about the lease duration %v", took, shortTimings.lease)
	}
}
