package e2e

import (
	"syscall"
	"testing"
	"time"
)

// Generous bounds for a loaded 2-core CI machine; the benchmarks measure
// the real figures.
const (
	firstLeaderWithin = 30 * time.Second
	reconcileWithin   = 30 * time.Second
	exitWithin        = 15 * time.Second
)

func TestSIGTERMHandsOverAtOnce(t *testing.T) {
	c := newCluster(t)
	for _, name := range []string{"a", "b", "c"} {
		c.start(name, replicaOptions{})
	}
	leader, _, next := c.awaitLeader(0, firstLeaderWithin)
	c.awaitReconciled(reconcileWithin)

	sent := time.Now()
	if err := leader.signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	successor, at, _ := c.awaitLeader(next, 10*time.Second)
	if successor == leader {
		t.Fatalf("%s led again after SIGTERM", leader.name)
	}
	handoff := at.Sub(sent)
	t.Logf("SIGTERM → %s leads: %v", successor.name, handoff.Round(time.Millisecond))
	// Without a release the successor would wait the lease duration.
	if handoff >= leaseDuration {
		t.Errorf("handoff took %v, not less than the lease duration %v: the lease was not released", handoff, leaseDuration)
	}
	if code := leader.awaitExit(t, exitWithin); code != 0 {
		t.Errorf("%s exited %d after SIGTERM, want 0", leader.name, code)
	}
	c.bump()
	c.awaitReconciled(reconcileWithin)
	c.checkNoOverlappingWriters()
}

func TestSIGKILLTakeoverAfterLeaseExpires(t *testing.T) {
	c := newCluster(t)
	for _, name := range []string{"a", "b", "c"} {
		c.start(name, replicaOptions{})
	}
	leader, _, next := c.awaitLeader(0, firstLeaderWithin)
	c.awaitReconciled(reconcileWithin)

	killed := time.Now()
	leader.kill()
	successor, at, _ := c.awaitLeader(next, leaseDuration+5*time.Second)
	took := at.Sub(killed)
	t.Logf("SIGKILL → %s leads: %v (lease %v)", successor.name, took.Round(time.Millisecond), leaseDuration)
	// The standby waits for expiry on its own clock, counted from the
	// last renew it saw, which came at most one retry period before the kill.
	if took < leaseDuration-retryPeriod-100*time.Millisecond {
		t.Errorf("took over %v after the kill: before the lease could have expired", took)
	}
	c.bump()
	c.awaitReconciled(reconcileWithin)
	c.checkNoOverlappingWriters()
}

// TestSIGSTOPPastTheLease pauses the leader past its lease: a standby takes
// over, and the old leader, woken, must not complete a single write and
// must exit with the lost-lease code.
func TestSIGSTOPPastTheLease(t *testing.T) {
	c := newCluster(t)
	for _, name := range []string{"a", "b", "c"} {
		c.start(name, replicaOptions{})
	}
	leader, _, next := c.awaitLeader(0, firstLeaderWithin)
	c.awaitReconciled(reconcileWithin)

	if err := leader.signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	successor, _, _ := c.awaitLeader(next, leaseDuration+5*time.Second)
	if successor == leader {
		t.Fatal("the stopped leader still leads")
	}
	// Work the paused leader's informer will hear about when it wakes.
	c.bump()
	c.awaitReconciled(reconcileWithin)
	if err := leader.signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	if code := leader.awaitExit(t, exitWithin); code != 1 {
		t.Errorf("woken old leader exited %d, want 1 (lease lost)", code)
	}
	c.bump()
	c.awaitReconciled(reconcileWithin)
	spans := c.checkNoOverlappingWriters()
	for _, s := range spans {
		if s.last.After(time.Now()) {
			t.Errorf("span in the future: %+v", s)
		}
	}
}

// TestLeaderCutOffFromTheAPIServer cuts the leader's connection with a
// proxy: it must stop writing at the renew deadline and exit; a standby
// takes over after the lease. A standby cut off and reconnected goes on.
func TestLeaderCutOffFromTheAPIServer(t *testing.T) {
	c := newCluster(t)
	replicas := map[string]*replica{}
	for _, name := range []string{"a", "b", "c"} {
		replicas[name] = c.start(name, replicaOptions{proxied: true})
	}
	leader, _, next := c.awaitLeader(0, firstLeaderWithin)
	c.awaitReconciled(reconcileWithin)

	// A standby loses its connection and gets it back: nothing changes.
	var standby *replica
	for _, r := range replicas {
		if r != leader {
			standby = r
			break
		}
	}
	standby.proxy.setCut(true)
	c.bump()
	c.awaitReconciled(reconcileWithin)
	standby.proxy.setCut(false)

	cut := time.Now()
	leader.proxy.setCut(true)
	successor, at, _ := c.awaitLeader(next, leaseDuration+10*time.Second)
	t.Logf("cut → %s leads: %v", successor.name, at.Sub(cut).Round(time.Millisecond))
	if code := leader.awaitExit(t, exitWithin); code != 1 {
		t.Errorf("cut-off leader exited %d, want 1 (lease lost)", code)
	}
	c.bump()
	c.awaitReconciled(reconcileWithin)
	if !standby.running() {
		t.Errorf("the standby that was cut off and reconnected exited (code %d)", standby.code)
	}
	c.checkNoOverlappingWriters()
}

// TestSamePodNameTwice starts two replicas with one POD_NAME: their
// identities differ, only one leads, and the other takes over from it.
func TestSamePodNameTwice(t *testing.T) {
	c := newCluster(t)
	twins := []*replica{
		c.start("twin1", replicaOptions{podName: "twin"}),
		c.start("twin2", replicaOptions{podName: "twin"}),
	}
	if twins[0].identity() == twins[1].identity() {
		t.Fatalf("both twins have identity %s", twins[0].identity())
	}
	leader, _, next := c.awaitLeader(0, firstLeaderWithin)
	other := twins[0]
	if leader == other {
		other = twins[1]
	}
	c.awaitReconciled(reconcileWithin)
	if err := leader.signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := leader.awaitExit(t, exitWithin); code != 0 {
		t.Errorf("leading twin exited %d", code)
	}
	if successor, _, _ := c.awaitLeader(next, 10*time.Second); successor != other {
		t.Fatalf("after the leading twin left, %s leads", successor.name)
	}
	c.bump()
	c.awaitReconciled(reconcileWithin)
	c.checkNoOverlappingWriters()
}

// TestBesideAClientGoElector runs a rein replica and a client-go elected
// replica on one Lease and hands over between them by SIGTERM, both ways.
func TestBesideAClientGoElector(t *testing.T) {
	c := newCluster(t)
	rein := c.start("rein", replicaOptions{})
	leader, _, next := c.awaitLeader(0, firstLeaderWithin)
	if leader != rein {
		t.Fatalf("leader %s", leader.name)
	}
	c.awaitReconciled(reconcileWithin)
	cg := c.start("clientgo", replicaOptions{program: "clientgo"})
	if err := rein.signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if l, _, n := c.awaitLeader(next, 10*time.Second); l != cg {
		t.Fatalf("after rein's SIGTERM %s leads, want the client-go replica", l.name)
	} else {
		next = n
	}
	if code := rein.awaitExit(t, exitWithin); code != 0 {
		t.Errorf("rein exited %d", code)
	}
	c.bump()
	c.awaitReconciled(reconcileWithin)

	rein2 := c.start("rein2", replicaOptions{})
	if err := cg.signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if l, _, _ := c.awaitLeader(next, 10*time.Second); l != rein2 {
		t.Fatalf("after client-go's SIGTERM %s leads, want rein2", l.name)
	}
	c.bump()
	c.awaitReconciled(reconcileWithin)
	c.checkNoOverlappingWriters()
}
