package e2e

import (
	"cmp"
	"context"
	"flag"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/watch"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/rein-k8s/rein/internal/netfault"
	"github.com/rein-k8s/rein/internal/testkit/audit"
	"github.com/rein-k8s/rein/internal/testkit/leasehistory"
	"github.com/rein-k8s/rein/pkg/leader"
)

var blackHoles = flag.Int("black-holes", 50, "leader black holes per variant of TestWritesHeldInTheNetwork")

// TestWritesHeldInTheNetwork black-holes the leader's path to the apiserver
// (its bytes are held, not dropped, as a partitioned network holds them
// while TCP retransmits), waits until another replica has taken the lease,
// and then delivers the held bytes: the writes the leader sent before its
// fence closed reach the apiserver after its term ended. The replicas run
// with --return-to-standby, so the cut-off leader's connection survives
// (the worst case). The apiserver's audit log tells which writes were
// accepted from a replica that no longer held the Lease.
//
//   - in-process fence only: such writes are accepted now and then (the
//     test logs how many; it is the window server-side fencing closes);
//   - with --server-side-fencing and the fencing policy installed: none is
//     accepted, over -black-holes cuts.
func TestWritesHeldInTheNetwork(t *testing.T) {
	for _, v := range []struct {
		name       string
		serverSide bool
		cuts       int
	}{
		{"fence only", false, max(*blackHoles/5, 3)},
		{"server-side fencing", true, *blackHoles},
	} {
		t.Run(v.name, func(t *testing.T) {
			c := newCluster(t)
			args := []string{"--return-to-standby"}
			if v.serverSide {
				installFencingPolicy(t, c, leaseName)
				args = append(args, "--server-side-fencing")
			}
			commits := c.watchCommits()
			for _, name := range []string{"a", "b"} {
				c.start(name, replicaOptions{proxied: true, args: args})
			}
			c.awaitLeader(0, firstLeaderWithin)
			if v.serverSide {
				awaitFencingEnforced(t, c, leaseName)
			}
			c.awaitReconciled(reconcileWithin)
			held := 0
			for i := range v.cuts {
				leader, _, next := c.awaitLeader(c.leases.count()-1, reconcileWithin)
				leader.proxy.Hold(netfault.Upstream)
				c.bump() // the leader sees the change and writes into the black hole
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				if err := leader.proxy.AwaitHeld(ctx); err != nil {
					t.Fatalf("cut %d: the leader sent nothing into the black hole: %v", i, err)
				}
				cancel()
				successor, _, _ := c.awaitLeader(next, leaseDuration+10*time.Second)
				if successor == leader {
					t.Fatalf("cut %d: the black-holed leader kept the lease", i)
				}
				held += int(leader.proxy.HeldBytes())
				leader.proxy.Release() // the held writes arrive now, after the takeover
				c.awaitReconciled(reconcileWithin)
			}
			// The audit log says what the clients were answered; the watch
			// says what was committed, ordered by etcd revision.
			answered, inLag, total, late, unanswered := c.writesFromNonHolders()
			if !v.serverSide { // no probes: the split means nothing
				answered, inLag = append(answered, inLag...), nil
			}
			committed, slow, interleaved, commitsSeen := c.staleCommits(commits, unanswered)
			t.Logf("%s: %d black holes (%d bytes held in all); ConfigMap writes answered 2xx: %d, of which from a replica that no longer held the lease: %d; HTTP answers to such late writes: %v; replica commits seen: %d, made after the lease had moved on: %d late writes, %d writes admitted in their term and committed after it; of those, after the new holder's first commit (interleaved): %d",
				v.name, v.cuts, held, total, len(answered)+len(inLag), late, commitsSeen, len(committed), len(slow), len(interleaved))
			for _, s := range answered {
				t.Logf("  late write answered 2xx: %s", s)
			}
			for _, s := range inLag {
				t.Logf("  late write answered 2xx in the policy's lag, before the new holder's probe was admitted: %s", s)
			}
			for _, s := range committed {
				t.Logf("  late commit: %s", s)
			}
			for _, line := range c.explainStaleCommits(commits) {
				t.Log("  " + line)
			}
			// The residual no fence closes: a write the apiserver received
			// and admitted while its writer held the lease, committed after
			// a takeover because the apiserver took longer than the margin
			// LeaseDuration − RenewDeadline (0.5s here) to commit it.
			for _, s := range slow {
				t.Logf("  admitted in its term, committed after it: %s", s)
			}
			// The policy reads the Lease from an informer that trails its
			// commit (pkg/leader, "Server-side fencing"): a late write can
			// be admitted in that lag, but not once the new holder's probe
			// (Term.AwaitFencingPolicy) was admitted: from then on the
			// policy has seen the new holder.
			if v.serverSide && len(answered) > 0 {
				t.Errorf("with server-side fencing, %d writes from non-holders were answered 2xx after the new holder's probe was admitted", len(answered))
			}
			// With server-side fencing, a term starts writing only once the
			// policy refuses its predecessor (Term.AwaitFencingPolicy): a
			// predecessor's late write may still land between the Lease
			// change and that moment (the policy reads the Lease from an
			// informer that trails its commit), but never after the new
			// holder's first write.
			for _, s := range interleaved {
				t.Logf("  interleaved: %s", s)
			}
			if v.serverSide && len(interleaved) > 0 {
				t.Errorf("with server-side fencing, %d commits of a previous holder came after the new holder's first commit", len(interleaved))
			}
		})
	}
}

// installFencingPolicy installs leader.FencingPolicy (once per control
// plane) and a binding for the lease, and waits until the apiserver
// enforces it.
func installFencingPolicy(t *testing.T, c *cluster, lease string) {
	t.Helper()
	ctx := context.Background()
	vap := c.admin.AdmissionregistrationV1()
	if _, err := vap.ValidatingAdmissionPolicies().Create(ctx, leader.FencingPolicy(), metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	binding, err := leader.FencingPolicyBinding(c.ns, lease)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := vap.ValidatingAdmissionPolicyBindings().Create(ctx, binding, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = vap.ValidatingAdmissionPolicyBindings().Delete(context.Background(), binding.Name, metav1.DeleteOptions{})
	})
}

// awaitFencingEnforced waits until the apiserver refuses a marked write of
// a non-holder: the binding is loaded and the Lease exists (a missing
// Lease admits everything).
func awaitFencingEnforced(t *testing.T, c *cluster, lease string) {
	t.Helper()
	ctx := context.Background()
	manager, err := leader.FencingFieldManager(c.ns, lease, "nobody")
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err := c.admin.CoreV1().ConfigMaps(c.ns).Patch(ctx, cmName(0), "application/merge-patch+json", []byte(`{}`), metav1.PatchOptions{FieldManager: manager})
		if apierrors.IsForbidden(err) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the fencing policy is not enforced after 30s: a write of a non-holder got %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// writesFromNonHolders reads the audit log: every successful ConfigMap
// write of a replica that arrived at the apiserver after another holder
// had acquired the Lease (its acquireTime), or while it was released, is
// a write from a non-holder. It returns those, described, and the count
// of all successful replica writes.
//
// unanswered holds "<identity>/<object>" for every write a replica sent
// while it held the lease that was not answered 2xx (a 504 after the
// client gave up): such a write was admitted in its term and may still be
// committed after it.
func (c *cluster) writesFromNonHolders() (stale, inLag []string, total int, lateCodes map[int]int, unanswered map[string]bool) {
	lateCodes, unanswered = map[int]int{}, map[string]bool{}
	c.t.Helper()
	identityOf := c.identityByUserAgent()
	holderAt := c.leases.HolderAt
	// The admitted probes of server-side fencing: dry-run updates of the
	// Lease, by identity, when received.
	probes := map[string][]time.Time{}
	c.scanAudit(func(ev *audit.Event) {
		if ev.ObjectRef.Resource == "leases" && ev.Verb == "update" && strings.Contains(ev.RequestURI, "dryRun=All") && ev.ResponseStatus.Code < 300 {
			id := identityOf[ev.UserAgent]
			probes[id] = append(probes[id], ev.RequestReceived)
		}
	})
	// probedBefore reports whether holder's probe was admitted in its term
	// that t falls in, before t.
	probedBefore := func(holder string, t time.Time) bool {
		for _, p := range probes[holder] {
			if p.Before(t) && holderAt(p) == holder && c.leases.termStart(p).Equal(c.leases.termStart(t)) {
				return true
			}
		}
		return false
	}
	c.scanAudit(func(ev *audit.Event) {
		if ev.ObjectRef.Resource != "configmaps" || !strings.HasPrefix(ev.UserAgent, "rein-e2e/") ||
			(ev.Verb != "patch" && ev.Verb != "update" && ev.Verb != "create" && ev.Verb != "delete") {
			return
		}
		id := identityOf[ev.UserAgent]
		late := holderAt(ev.RequestReceived) != id
		if late {
			lateCodes[ev.ResponseStatus.Code]++
		} else if ev.ResponseStatus.Code >= 300 {
			unanswered[id+"/"+ev.ObjectRef.Name] = true
		}
		if ev.ResponseStatus.Code >= 300 {
			return
		}
		total++
		if h := holderAt(ev.RequestReceived); late {
			line := ev.Verb + " " + ev.ObjectRef.Name + " by " + id + " received " + ev.RequestReceived.Format("15:04:05.000000") +
				" while " + strconv.Quote(h) + " held the lease"
			if probedBefore(h, ev.RequestReceived) {
				stale = append(stale, line)
			} else {
				inLag = append(inLag, line)
			}
		}
	})
	return stale, inLag, total, lateCodes, unanswered
}

// The annotations test/e2e/replica writes on every ConfigMap it reconciles.
const (
	reconciledAnnotation = "e2e.rein.dev/reconciled"
	writerAnnotation     = "e2e.rein.dev/writer"
)

// commitLog records, from a watch, every committed version of the
// cluster's ConfigMaps that a replica's write made: one whose replica
// annotations changed. The writer annotation names the process, and the
// resourceVersion (an etcd revision) orders the commit against the Lease's
// changes, whatever the audit log says the client was answered (a request
// answered 504 may still commit).
type commitLog struct {
	mu      sync.Mutex
	commits []replicaCommit
}

type replicaCommit struct {
	name, writer string
	rv           int64
}

func (c *cluster) watchCommits() *commitLog {
	log := &commitLog{}
	cms := c.admin.CoreV1().ConfigMaps(c.ns)
	list, err := cms.List(context.Background(), metav1.ListOptions{})
	if err != nil {
		c.t.Fatal(err)
	}
	last := map[string]string{}
	for _, cm := range list.Items {
		last[cm.Name] = cm.Annotations[reconciledAnnotation] + "\x00" + cm.Annotations[writerAnnotation]
	}
	follow(c.t, list.ResourceVersion, cms.Watch, func(ev watch.Event) {
		cm, ok := ev.Object.(*corev1.ConfigMap)
		if !ok || ev.Type == watch.Deleted {
			return
		}
		marks := cm.Annotations[reconciledAnnotation] + "\x00" + cm.Annotations[writerAnnotation]
		if marks == last[cm.Name] {
			return // a bump by the test, or a no-op
		}
		last[cm.Name] = marks
		rv, _ := strconv.ParseInt(cm.ResourceVersion, 10, 64)
		log.mu.Lock()
		log.commits = append(log.commits, replicaCommit{cm.Name, cm.Annotations[writerAnnotation], rv})
		log.mu.Unlock()
	})
	return log
}

// staleCommits are the commits of a replica made after the Lease had
// changed to another holder (or was released), by etcd revision. Those
// that a write admitted in the writer's term explains (in unanswered: the
// apiserver committed it after the term, the client having given up) are
// returned apart, in slow: the apiserver's admission-to-commit latency
// outran the margin LeaseDuration − RenewDeadline.
//
// interleaved are the stale commits made after the new holder's own first
// commit in its term: the two replicas' writes interleaved in etcd's
// order. A stale commit before that is a predecessor's write landing
// between the Lease change and the successor's first write: late, but
// still ordered before every write of the new term.
func (c *cluster) staleCommits(log *commitLog, unanswered map[string]bool) (stale, slow, interleaved []string, total int) {
	writerIdentity := c.identityByUserAgent() // the writer annotation is the user agent
	changes, _ := c.leases.Changes()
	termOf := func(rev int64) int { // index of the Lease change rev falls in
		term := -1
		for i, ch := range changes {
			if ch.Revision < rev {
				term = i
			}
		}
		return term
	}
	log.mu.Lock()
	defer log.mu.Unlock()
	commits := slices.Clone(log.commits)
	slices.SortFunc(commits, func(a, b replicaCommit) int { return cmp.Compare(a.rv, b.rv) })
	holderWrote := map[int]int64{} // term → revision of its holder's first commit
	for _, cm := range commits {
		term := termOf(cm.rv)
		holder := c.leases.HolderAtRevision(cm.rv)
		total++
		id := writerIdentity[cm.writer]
		if id == holder {
			if _, ok := holderWrote[term]; !ok {
				holderWrote[term] = cm.rv
			}
			continue
		}
		desc := fmt.Sprintf("%s at revision %d by %s while %q held the lease", cm.name, cm.rv, id, holder)
		if first, ok := holderWrote[term]; ok {
			interleaved = append(interleaved, fmt.Sprintf("%s, after the holder's first commit of its term (revision %d)", desc, first))
		}
		if unanswered[id+"/"+cm.name] {
			slow = append(slow, desc)
		} else {
			stale = append(stale, desc)
		}
	}
	return stale, slow, interleaved, total
}

// explainStaleCommits describes, for every commit of a non-holder after a
// takeover, what the apiserver saw around it: the Lease writes near the
// takeover and the writer's requests on that object, with when each was
// received and answered. It is what tells a write admitted before the
// Lease changed (committed late) from one admitted after.
func (c *cluster) explainStaleCommits(log *commitLog) []string {
	writerIdentity := c.identityByUserAgent()
	changes, _ := c.leases.Changes()
	log.mu.Lock()
	commits := append([]replicaCommit(nil), log.commits...)
	log.mu.Unlock()
	const stamp = "15:04:05.000000"
	type staleCommit struct {
		replicaCommit
		from, to time.Time // the audit window around the takeover
		lines    []string
	}
	var stale []*staleCommit
	for _, cm := range commits {
		id := writerIdentity[cm.writer]
		if id == c.leases.HolderAtRevision(cm.rv) {
			continue
		}
		var takeover leasehistory.Change
		for _, ch := range changes {
			if ch.Revision < cm.rv {
				takeover = ch
			}
		}
		stale = append(stale, &staleCommit{replicaCommit: cm,
			from: takeover.Acquired.Add(-3 * time.Second), to: takeover.Acquired.Add(3 * time.Second),
			lines: []string{fmt.Sprintf("commit of %s at revision %d by %s; the Lease went to %q at revision %d (acquireTime %s, seen %s)",
				cm.name, cm.rv, id, takeover.Holder, takeover.Revision, takeover.Acquired.Format(stamp), takeover.Seen.Format(stamp))}})
	}
	if len(stale) == 0 {
		return nil
	}
	c.scanAudit(func(ev *audit.Event) {
		lease := ev.ObjectRef.Resource == "leases" && ev.ObjectRef.Name == leaseName && ev.Verb != "get" && ev.Verb != "watch" && ev.Verb != "list"
		for _, sc := range stale {
			write := ev.ObjectRef.Resource == "configmaps" && ev.ObjectRef.Name == sc.name && ev.UserAgent == sc.writer
			if (lease || write) && !ev.RequestReceived.Before(sc.from) && !ev.RequestReceived.After(sc.to) {
				sc.lines = append(sc.lines, fmt.Sprintf("    %s %s/%s by %s: received %s, answered %s with %d (%s)",
					ev.Verb, ev.ObjectRef.Resource, ev.ObjectRef.Name, ev.UserAgent,
					ev.RequestReceived.Format(stamp), ev.StageTimestamp.Format(stamp), ev.ResponseStatus.Code, ev.RequestURI))
			}
		}
	})
	var out []string
	for _, sc := range stale {
		out = append(out, sc.lines...)
	}
	return out
}

// identityByUserAgent maps each replica's user agent (which is also the
// writer annotation it puts on the ConfigMaps) to its identity.
func (c *cluster) identityByUserAgent() map[string]string {
	out := map[string]string{}
	for _, r := range c.replicas {
		out["rein-e2e/"+r.podName+"/"+strconv.Itoa(r.cmd.Process.Pid)] = r.identity()
	}
	return out
}
