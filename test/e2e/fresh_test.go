package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/rein-k8s/rein/pkg/fence"
)

// externalCall is one call of a replica's handler to the stand-in for an
// external system (--external-url): it is about to act on uid.
type externalCall struct {
	UID    types.UID `json:"uid"`
	Key    string    `json:"key"`
	Writer string    `json:"writer"`
	at     time.Time
}

// externalSystem records the calls replicas make to it. It fences them
// as an external system must (pkg/fence's receiver rule): a call whose
// token is older than one it has seen for the same Lease is refused and
// not counted, for it left a replica under a hold that has ended (a call
// sent just before the process was stopped arrives after it wakes).
type externalSystem struct {
	*httptest.Server
	mu      sync.Mutex
	calls   []externalCall
	newest  map[string]int64 // the Lease's namespace/name → newest term seen
	refused int
}

func newExternalSystem(t testing.TB) *externalSystem {
	s := &externalSystem{newest: map[string]int64{}}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var call externalCall
		if err := json.NewDecoder(r.Body).Decode(&call); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		token := r.Header.Get(fence.TokenHeader)
		i := strings.LastIndex(token, "/")
		term, err := strconv.ParseInt(token[i+1:], 10, 64)
		if i < 0 || err != nil {
			http.Error(w, "no fencing token: "+token, http.StatusBadRequest)
			return
		}
		lease := token[:i]
		call.at = time.Now()
		s.mu.Lock()
		defer s.mu.Unlock()
		if term < s.newest[lease] {
			s.refused++
			http.Error(w, "stale fencing token "+token, http.StatusConflict)
			return
		}
		s.newest[lease] = term
		s.calls = append(s.calls, call)
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *externalSystem) callsSince(t time.Time) []externalCall {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []externalCall
	for _, c := range s.calls {
		if !c.at.Before(t) {
			out = append(out, c)
		}
	}
	return out
}

// TestWokenReplicaActsOnlyOnLiveObjects (issue 29): a replica stopped past
// its lease wakes with caches that missed what happened while it slept.
// Each cycle gives every object work (so a stale cache shows work to do),
// stops one replica at once, lets the others take its shards or lease and
// finish the work, deletes and recreates objects under the same names (new
// UIDs), then continues the stopped replica and waits until it holds work
// again. No handler of the woken replica may make a call the external
// system accepts for an object deleted while it slept: its new hold starts
// from caches that have caught up with the apiserver. (A call its old hold
// had under way when it was stopped may arrive after it wakes; the system
// refuses it by its fencing token, as the sample's hypervisor does.)
func TestWokenReplicaActsOnlyOnLiveObjects(t *testing.T) {
	t.Run("sharded", func(t *testing.T) {
		external := newExternalSystem(t)
		c := newClusterWith(t, 40)
		group := c.watchGroup()
		args := []string{"--external-url", external.URL, "--shards", strconv.Itoa(testShards)}
		replicas := []*replica{
			c.start("r1", replicaOptions{args: args}),
			c.start("r2", replicaOptions{args: args}),
			c.start("r3", replicaOptions{args: args}),
		}
		c.awaitBalanced(group, 60*time.Second, replicas...)
		c.awaitReconciled(60 * time.Second)
		check := newWokenCheck(t, external)
		for cycle := range wokenCycles {
			victim := replicas[cycle%len(replicas)]
			c.bump() // every object has work: a stale cache shows it
			if err := victim.signal(syscall.SIGSTOP); err != nil {
				t.Fatal(err)
			}
			c.awaitBalanced(group, 30*time.Second, c.liveExcept(victim)...)
			c.awaitReconciled(60 * time.Second)
			gone := c.recreate(cycle)
			c.awaitReconciled(60 * time.Second)
			resumed := time.Now()
			if err := victim.signal(syscall.SIGCONT); err != nil {
				t.Fatal(err)
			}
			c.awaitBalanced(group, 30*time.Second, replicas...)
			c.bump()
			c.awaitReconciled(60 * time.Second)
			check.cycle(cycle, victim, resumed, gone)
		}
		check.report()
	})

	// A single leader with --return-to-standby: the stopped leader's
	// successor is killed while it sleeps, so the woken replica wins the
	// expired lease within moments of waking, caches and all.
	t.Run("single leader returning to standby", func(t *testing.T) {
		external := newExternalSystem(t)
		c := newClusterWith(t, 40)
		args := []string{"--external-url", external.URL, "--return-to-standby"}
		leader := c.start("r0", replicaOptions{args: args})
		_, _, next := c.awaitLeader(0, 60*time.Second)
		c.awaitReconciled(60 * time.Second)
		check := newWokenCheck(t, external)
		for cycle := range wokenCycles {
			standby := c.start("r"+strconv.Itoa(cycle+1), replicaOptions{args: args})
			standby.awaitLog(t, "caches synced", 60*time.Second)
			c.bump()
			if err := leader.signal(syscall.SIGSTOP); err != nil {
				t.Fatal(err)
			}
			var successor *replica
			successor, _, next = c.awaitLeader(next, 30*time.Second)
			if successor != standby {
				t.Fatalf("cycle %d: %s leads, want the standby %s", cycle, successor.name, standby.name)
			}
			c.awaitReconciled(60 * time.Second)
			gone := c.recreate(cycle)
			c.awaitReconciled(60 * time.Second)
			standby.kill()
			// Wake the old leader only once the lease has expired: it then
			// wins the moment it sees its own term lost. Expiry is a
			// matter of time, not an event to await.
			time.Sleep(leaseDuration + retryPeriod)
			resumed := time.Now()
			if err := leader.signal(syscall.SIGCONT); err != nil {
				t.Fatal(err)
			}
			var again *replica
			again, _, next = c.awaitLeader(next, 30*time.Second)
			if again != leader {
				t.Fatalf("cycle %d: %s leads, want the woken %s", cycle, again.name, leader.name)
			}
			c.bump()
			c.awaitReconciled(60 * time.Second)
			check.cycle(cycle, leader, resumed, gone)
		}
		check.report()
	})
}

// wokenCycles is how many times a replica is stopped and woken per variant.
const wokenCycles = 20

// wokenCheck counts the woken replicas' external calls for objects deleted
// while they slept.
type wokenCheck struct {
	t          *testing.T
	external   *externalSystem
	deleted    int
	violations int
}

func newWokenCheck(t *testing.T, external *externalSystem) *wokenCheck {
	return &wokenCheck{t: t, external: external}
}

func (w *wokenCheck) cycle(cycle int, woken *replica, resumed time.Time, gone map[types.UID]bool) {
	w.t.Helper()
	w.deleted += len(gone)
	writer := woken.writer()
	for _, call := range w.external.callsSince(resumed) {
		if call.Writer == writer && gone[call.UID] {
			w.violations++
			w.t.Errorf("cycle %d: woken replica %s called the external system for %s (uid %s), deleted while it slept", cycle, woken.name, call.Key, call.UID)
		}
	}
}

func (w *wokenCheck) report() {
	w.external.mu.Lock()
	refused := w.external.refused
	w.external.mu.Unlock()
	w.t.Logf("%d cycles: %d objects deleted while a replica slept; the woken replica's accepted external calls for them: %d (calls refused for a stale token: %d)", wokenCycles, w.deleted, w.violations, refused)
}

// recreate deletes a quarter of the ConfigMaps (a different quarter each
// cycle) and creates them again under the same names, at the current
// version and marked as needing work; it returns the old UIDs.
func (c *cluster) recreate(cycle int) map[types.UID]bool {
	c.t.Helper()
	ctx := context.Background()
	cms := c.admin.CoreV1().ConfigMaps(c.ns)
	gone := map[types.UID]bool{}
	for i := cycle % 4; i < c.objects; i += 4 {
		old, err := cms.Get(ctx, cmName(i), metav1.GetOptions{})
		if err != nil {
			c.t.Fatal(err)
		}
		if err := cms.Delete(ctx, old.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &old.UID}}); err != nil {
			c.t.Fatal(err)
		}
		gone[old.UID] = true
		if _, err := cms.Create(ctx, &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Name: old.Name},
			Data:       map[string]string{"v": strconv.Itoa(c.version)},
		}, metav1.CreateOptions{}); err != nil {
			c.t.Fatal(err)
		}
	}
	return gone
}
