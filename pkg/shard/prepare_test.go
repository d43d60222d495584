package shard

import (
	"testing"
	"time"

	clocktesting "k8s.io/utils/clock/testing"
)

// keyOf returns a key of shard s of n.
func keyOf(t *testing.T, s, n int) string {
	t.Helper()
	for i := range 10000 {
		key := "ns/obj-" + string(rune('a'+i%26)) + time.Duration(i).String()
		if keyShard(key, n) == s {
			return key
		}
	}
	t.Fatalf("no key of shard %d found", s)
	return ""
}

// With Config.Prepare set, a shard that opens takes no key until it is
// admitted; a generation handed on (or reopened) before its preparation
// ended is not admitted by it.
func TestPreparedShardsWaitForAdmission(t *testing.T) {
	const n = 4
	g := newGates("ns", "group", n, clocktesting.NewFakeClock(time.Now()))
	g.prepared = true
	key := keyOf(t, 1, n)

	g.open(1, 7)
	if _, _, ok := g.enter(key); ok {
		t.Fatal("a shard being prepared admitted a key")
	}
	gens := g.generations([]int{1})
	if got := g.admit([]int{1}, gens); len(got) != 1 || got[0] != 1 {
		t.Fatalf("admit = %v, want [1]", got)
	}
	_, done, ok := g.enter(key)
	if !ok {
		t.Fatal("an admitted shard refused its key")
	}
	done()

	// Opened again, then handed on while being prepared.
	g.open(1, 8)
	gens = g.generations([]int{1})
	g.stopTaking(1)
	if got := g.admit([]int{1}, gens); len(got) != 0 {
		t.Fatalf("a shard handed on during its preparation was admitted: %v", got)
	}
	// Reopened: the previous generation's preparation admits nothing.
	old := gens
	g.open(1, 9)
	if got := g.admit([]int{1}, old); len(got) != 0 {
		t.Fatalf("an older generation's preparation admitted the new one: %v", got)
	}
	if _, _, ok := g.enter(key); ok {
		t.Fatal("the new generation took a key before its own preparation")
	}
}

// enterShard admits by shard what enter admits by key, and refuses a shard
// out of range.
func TestEnterShard(t *testing.T) {
	const n = 4
	g := newGates("ns", "group", n, clocktesting.NewFakeClock(time.Now()))
	g.open(2, 1)
	for s := -1; s <= n; s++ {
		_, done, ok := g.enterShard(s)
		if ok != (s == 2) {
			t.Fatalf("enterShard(%d) = %v with shard 2 open", s, ok)
		}
		if ok {
			done()
		}
	}
}
