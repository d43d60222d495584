package e2e

import (
	"cmp"
	"context"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/rein-k8s/rein/internal/netfault"
	"github.com/rein-k8s/rein/internal/partition"
	"github.com/rein-k8s/rein/internal/testkit/audit"
	"github.com/rein-k8s/rein/pkg/shard"
)

const testShards = 16

// groupLog records every change of the sharded group's Leases (member
// Leases and shard records) as one watch shows them.
type groupLog struct {
	mu      sync.Mutex
	events  []leaseEvent
	changed chan struct{}
}

type leaseEvent struct {
	name, holder, state string
	rev                 int64
	seen                time.Time
	deleted             bool
}

func (c *cluster) watchGroup() *groupLog {
	g := &groupLog{changed: make(chan struct{})}
	leases := c.admin.CoordinationV1().Leases(c.ns)
	list, err := leases.List(context.Background(), metav1.ListOptions{})
	if err != nil {
		c.t.Fatal(err)
	}
	follow(c.t, list.ResourceVersion, leases.Watch, func(ev watch.Event) {
		l, ok := ev.Object.(*coordinationv1.Lease)
		if !ok {
			return
		}
		e := leaseEvent{name: l.Name, state: l.Annotations[shard.AnnotationState], seen: time.Now(), deleted: ev.Type == watch.Deleted}
		if l.Spec.HolderIdentity != nil {
			e.holder = *l.Spec.HolderIdentity
		}
		e.rev, _ = strconv.ParseInt(l.ResourceVersion, 10, 64)
		g.mu.Lock()
		g.events = append(g.events, e)
		close(g.changed)
		g.changed = make(chan struct{})
		g.mu.Unlock()
	})
	return g
}

func (g *groupLog) snapshot() ([]leaseEvent, <-chan struct{}) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return slices.Clone(g.events), g.changed
}

// holders returns each shard record's holder now ("" if none).
func (g *groupLog) holders() []string {
	events, _ := g.snapshot()
	out := make([]string, testShards)
	for _, e := range events {
		if s, ok := recordNumber(e.name); ok {
			out[s] = e.holder
			if e.deleted {
				out[s] = ""
			}
		}
	}
	return out
}

func recordNumber(name string) (int, bool) {
	n, ok := strings.CutPrefix(name, shard.RecordName(leaseName, 0)[:len(leaseName)+len("-shard-")])
	if !ok {
		return 0, false
	}
	s, err := strconv.Atoi(n)
	return s, err == nil && s < testShards
}

// holderAtRevision is who the record of shard s named when etcd revision
// rev was committed.
func (g *groupLog) holderAtRevision(s int, rev int64) string {
	events, _ := g.snapshot()
	holder := ""
	name := shard.RecordName(leaseName, s)
	for _, e := range events {
		if e.name == name && e.rev < rev {
			holder = e.holder
		}
	}
	return holder
}

// lastRenew is when the watch last saw member Lease name written by its
// member (not marked dead, not deleted).
func (g *groupLog) lastRenew(name string) time.Time {
	events, _ := g.snapshot()
	var at time.Time
	for _, e := range events {
		if e.name == name && !e.deleted && e.state == "" {
			at = e.seen
		}
	}
	return at
}

// movedAway returns, for each shard whose record named from at since,
// when the watch saw it name someone else.
func (g *groupLog) movedAway(from string, since time.Time) map[int]time.Time {
	events, _ := g.snapshot()
	holder := map[int]string{}
	out := map[int]time.Time{}
	for _, e := range events {
		s, ok := recordNumber(e.name)
		if !ok {
			continue
		}
		if !e.seen.Before(since) && holder[s] == from && e.holder != from {
			if _, seen := out[s]; !seen {
				out[s] = e.seen
			}
		}
		holder[s] = e.holder
	}
	return out
}

// awaitBalanced waits until every shard record names one of live, with
// counts that differ by at most one.
func (c *cluster) awaitBalanced(g *groupLog, timeout time.Duration, live ...*replica) time.Duration {
	c.t.Helper()
	began := time.Now()
	ids := map[string]bool{}
	for _, r := range live {
		ids[r.identity()] = true
	}
	deadline := time.After(timeout)
	for {
		_, changed := g.snapshot()
		counts := map[string]int{}
		ok := true
		for _, h := range g.holders() {
			if !ids[h] {
				ok = false
			}
			counts[h]++
		}
		lo, hi := testShards, 0
		for id := range ids {
			lo, hi = min(lo, counts[id]), max(hi, counts[id])
		}
		if ok && hi-lo <= 1 {
			return time.Since(began)
		}
		select {
		case <-changed:
		case <-time.After(100 * time.Millisecond):
		case <-deadline:
			c.t.Fatalf("shards not balanced over %d replicas within %v: %v", len(live), timeout, g.holders())
		}
	}
}

// TestShardedReplicas runs the replica program sharded (16 shards) as 3,
// then 5, then 2 processes, with work pending at every change, and with a
// SIGTERM, a SIGKILL, a SIGSTOP past the lease and a black-holed replica.
// It checks from etcd's order that every reconcile write was committed
// while the shard record of its object named its writer, that every object
// is reconciled after each step (changes made during each handoff
// included), and it reports how long shards were without a holder.
func TestShardedReplicas(t *testing.T) { runShardedReplicas(t, false) }

// TestPartitionedShardedReplicas is TestShardedReplicas with
// --partition-caches: each replica lists and watches only its shards'
// ConfigMaps (the apiserver's ShardedListAndWatch), and a key's shard is
// its object's UID's. The audit log shows that every list and watch of the
// replicas carried a shard selector.
func TestPartitionedShardedReplicas(t *testing.T) { runShardedReplicas(t, true) }

func runShardedReplicas(t *testing.T, partitioned bool) {
	c := newClusterWith(t, 120)
	auditFrom, err := audit.Read(env, 0, func(*audit.Event) {})
	if err != nil {
		t.Fatal(err)
	}
	group := c.watchGroup()
	commits := c.watchCommits()
	args := []string{"--shards", strconv.Itoa(testShards)}
	if partitioned {
		args = append(args, "--partition-caches")
	}
	sharded := func(name string, proxied bool) *replica {
		return c.start(name, replicaOptions{proxied: proxied, args: args})
	}
	r1, r2, r3 := sharded("r1", false), sharded("r2", false), sharded("r3", false)
	took := c.awaitBalanced(group, 60*time.Second, r1, r2, r3)
	c.awaitReconciled(60 * time.Second)
	t.Logf("3 replicas: shards balanced %v after the processes started", took.Round(time.Millisecond))

	// Scale to 5 with work pending.
	c.bump()
	r4, r5 := sharded("r4", true), sharded("r5", false)
	took = c.awaitBalanced(group, 60*time.Second, r1, r2, r3, r4, r5)
	c.awaitReconciled(60 * time.Second)
	t.Logf("scale 3 → 5: balanced %v after the two new processes started (process start and cache sync included)", took.Round(time.Millisecond))

	// SIGTERM: r1 hands its shards on.
	c.bump()
	id1 := r1.identity()
	signalled := time.Now()
	if err := r1.signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	c.bump() // a change while r1's shards move
	if code := r1.awaitExit(t, 30*time.Second); code != 0 {
		t.Fatalf("r1 exited %d after SIGTERM", code)
	}
	moved := group.movedAway(id1, signalled)
	var worst time.Duration
	for _, at := range moved {
		worst = max(worst, at.Sub(signalled))
	}
	c.awaitBalanced(group, 30*time.Second, r2, r3, r4, r5)
	c.awaitReconciled(60 * time.Second)
	t.Logf("SIGTERM: %d shards handed on, the last %v after the signal (drain of running handlers included; target ≤ 100ms)", len(moved), worst.Round(time.Millisecond))
	if len(moved) == 0 || worst > 2*time.Second {
		t.Errorf("SIGTERM: %d shards handed on, the last after %v", len(moved), worst)
	}

	// SIGKILL: r2's shards move after the lease duration.
	c.bump()
	takeover := func(r *replica, fault func()) {
		t.Helper()
		id := r.identity()
		fault()
		faulted := time.Now()
		c.bump() // a change while r's shards wait for a new holder
		c.awaitBalanced(group, 30*time.Second, c.liveExcept(r)...)
		last := group.lastRenew(shard.MemberLeaseName(leaseName, id))
		var worst time.Duration
		moved := group.movedAway(id, faulted)
		for _, at := range moved {
			worst = max(worst, at.Sub(last))
		}
		t.Logf("%s: %d shards taken over, the last %v after its member lease's last renew was seen (lease duration %v; target ≤ lease + 150ms)",
			r.name, len(moved), worst.Round(time.Millisecond), leaseDuration)
		if worst > leaseDuration+2*time.Second {
			t.Errorf("takeover of %s's shards took %v after its last renew", r.name, worst)
		}
	}
	takeover(r2, func() { r2.kill() })
	c.awaitReconciled(60 * time.Second)

	// SIGSTOP past the lease: r3's shards move; on SIGCONT it finds its
	// membership ended and rejoins as a new member.
	c.bump()
	takeover(r3, func() {
		if err := r3.signal(syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
	})
	c.awaitReconciled(60 * time.Second)
	if err := r3.signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	resumed := time.Now()
	c.bump()
	c.awaitBalanced(group, 30*time.Second, r3, r4, r5)
	took = time.Since(resumed)
	c.awaitReconciled(60 * time.Second)
	t.Logf("SIGCONT: r3 rejoined; balanced over 3 within %v of SIGCONT (a bump of every object included)", took.Round(time.Millisecond))

	// A black hole between r4 and the apiserver, past the lease: its
	// shards move; its writes held in the network arrive afterwards.
	c.bump()
	takeover(r4, func() { r4.proxy.Hold(netfault.Upstream) })
	c.awaitReconciled(60 * time.Second)
	r4.proxy.Release()
	resumed = time.Now()
	c.bump()
	c.awaitBalanced(group, 30*time.Second, r3, r4, r5)
	took = time.Since(resumed)
	c.awaitReconciled(60 * time.Second)
	t.Logf("black hole released: r4 rejoined; balanced over 3 within %v of the release (a bump included)", took.Round(time.Millisecond))

	// Scale to 2.
	c.bump()
	if err := r3.signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := r3.awaitExit(t, 30*time.Second); code != 0 {
		t.Fatalf("r3 exited %d after SIGTERM", code)
	}
	c.awaitBalanced(group, 30*time.Second, r4, r5)
	c.awaitReconciled(60 * time.Second)

	// Every reconcile write, by etcd revision, was committed while its
	// object's shard record named its writer.
	writerIdentity := c.identityByUserAgent()
	commits.mu.Lock()
	all := slices.Clone(commits.commits)
	commits.mu.Unlock()
	slices.SortFunc(all, func(a, b replicaCommit) int { return cmp.Compare(a.rv, b.rv) })
	var outside []string
	perWriter := map[string]int{}
	shardOf := func(name string) int { return shard.Of(c.ns, name, testShards) }
	if partitioned {
		uids := c.uids()
		shardOf = func(name string) int { return partition.OfValue(uids[name], testShards) }
	}
	for _, cm := range all {
		s := shardOf(cm.name)
		id := writerIdentity[cm.writer]
		perWriter[id]++
		if holder := group.holderAtRevision(s, cm.rv); holder != id {
			outside = append(outside, fmt.Sprintf("%s (shard %d) at revision %d by %s while the record named %q", cm.name, s, cm.rv, id, holder))
		}
	}
	t.Logf("%d reconcile commits by %d replicas; %d committed outside their writer's hold of the shard", len(all), len(perWriter), len(outside))
	for _, o := range outside {
		t.Error("write outside its writer's hold: " + o)
	}
	if len(perWriter) < 5 {
		t.Errorf("only %d replicas wrote: %v", len(perWriter), perWriter)
	}
	if partitioned {
		c.checkPartitionedRequests(auditFrom)
	}
}

// uids returns the UID of each of the cluster's ConfigMaps by name.
func (c *cluster) uids() map[string]string {
	list, err := c.admin.CoreV1().ConfigMaps(c.ns).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		c.t.Fatal(err)
	}
	out := map[string]string{}
	for _, cm := range list.Items {
		out[cm.Name] = string(cm.UID)
	}
	return out
}

// checkPartitionedRequests reads the audit log from offset on: every list
// and watch of the namespace's ConfigMaps that a replica sent carried a
// shard selector (none fell back to full caches), and no replica logged
// the fallback.
func (c *cluster) checkPartitionedRequests(offset int64) {
	c.t.Helper()
	var selected int
	var full []string
	_, err := audit.Read(env, offset, func(ev *audit.Event) {
		if !strings.HasPrefix(ev.UserAgent, "rein-e2e/") || ev.ObjectRef.Resource != "configmaps" ||
			ev.ObjectRef.Namespace != c.ns || (ev.Verb != "list" && ev.Verb != "watch") {
			return
		}
		if u, err := url.Parse(ev.RequestURI); err == nil && u.Query().Get("shardSelector") != "" {
			selected++
			return
		}
		full = append(full, ev.Verb+" "+ev.RequestURI+" by "+ev.UserAgent)
	})
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Logf("ConfigMap lists and watches by the replicas: %d with a shard selector, %d without", selected, len(full))
	if selected == 0 {
		c.t.Error("no list or watch of the replicas carried a shard selector")
	}
	for _, f := range full {
		c.t.Error("a list or watch without a shard selector: " + f)
	}
	for _, r := range c.replicas {
		if strings.Contains(r.logTail(100000), "ignores shard selectors") {
			c.t.Errorf("%s fell back to full caches", r.name)
		}
	}
}

// liveExcept returns the running replicas other than r.
func (c *cluster) liveExcept(r *replica) []*replica {
	var out []*replica
	for _, x := range c.replicas {
		if x != r && x.running() {
			out = append(out, x)
		}
	}
	return out
}
