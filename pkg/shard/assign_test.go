package shard

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

// The key → shard map must never change between versions: replicas of two
// versions during a rolling upgrade must agree on every key's shard. The
// values are pinned as first computed; a change of the hash fails here.
func TestOfIsStable(t *testing.T) {
	for _, c := range []struct {
		ns, name string
		want     int
	}{
		{"default", "web-1", 137},
		{"vms", "vm-000", 954},
		{"", "cluster-scoped", 107},
		{"a", "b/c", 747},
	} {
		if got := Of(c.ns, c.name, 1024); got != c.want {
			t.Errorf("Of(%q, %q, 1024) = %d, want %d: the key → shard map changed, which moves keys between versions", c.ns, c.name, got, c.want)
		}
	}
	if Of("x", "y", 1<<30) == Of("y", "x", 1<<30) {
		t.Error("Of ignores the order of namespace and name")
	}
}

// Keys spread evenly: over 100,000 keys, every one of 16 shards gets
// within 5% of its share.
func TestOfSpreadsKeys(t *testing.T) {
	const n, keys = 16, 100_000
	counts := make([]int, n)
	for i := range keys {
		counts[Of(fmt.Sprintf("ns-%d", i%37), fmt.Sprintf("obj-%d", i), n)]++
	}
	for s, c := range counts {
		if share := float64(c) / (keys / n); share < 0.95 || share > 1.05 {
			t.Errorf("shard %d got %d keys (%.3f of its share)", s, c, share)
		}
	}
}

func members(m int) []string {
	out := make([]string, m)
	for i := range out {
		out[i] = fmt.Sprintf("replica-%c%d", 'a'+i%26, i)
	}
	return out
}

func counts(assignment []string) map[string]int {
	c := map[string]int{}
	for _, h := range assignment {
		c[h]++
	}
	return c
}

// Every shard goes to a member, and held counts differ by at most one,
// with or without current holders (random ones, some gone).
func TestAssignBalances(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		n, m := 1+rng.IntN(256), 1+rng.IntN(20)
		ms := members(m)
		var current []string
		if rng.IntN(2) == 0 {
			current = make([]string, n)
			for s := range current {
				if r := rng.IntN(m + 2); r < m {
					current[s] = ms[r]
				} else if r == m {
					current[s] = "gone"
				}
			}
		}
		got := assignShards(n, ms, current)
		c := counts(got)
		lo, hi := n, 0
		for _, id := range ms {
			lo, hi = min(lo, c[id]), max(hi, c[id])
		}
		if hi-lo > 1 || c[""] > 0 || c["gone"] > 0 {
			t.Fatalf("n=%d m=%d: counts %v", n, m, c)
		}
	}
	if got := assignShards(4, nil, nil); !slices.Equal(got, []string{"", "", "", ""}) {
		t.Errorf("no members: %q", got)
	}
}

// The same view gives the same assignment whatever the members' order,
// and an assignment that holders already match moves nothing.
func TestAssignIsDeterministicAndStable(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for range 500 {
		n, m := 1+rng.IntN(128), 1+rng.IntN(12)
		ms := members(m)
		first := assignShards(n, ms, nil)
		shuffled := slices.Clone(ms)
		rng.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
		shuffled = append(shuffled, shuffled[0]) // a duplicate changes nothing
		if again := assignShards(n, shuffled, nil); !slices.Equal(first, again) {
			t.Fatalf("n=%d m=%d: the members' order changed the assignment", n, m)
		}
		if settled := assignShards(n, ms, first); !slices.Equal(first, settled) {
			t.Fatalf("n=%d m=%d: an assignment its holders match moved shards", n, m)
		}
	}
}

func moves(a, b []string) int {
	n := 0
	for s := range a {
		if a[s] != b[s] {
			n++
		}
	}
	return n
}

// A join moves about the newcomer's share, a leave about the leaver's:
// holders keep their shards up to capacity. At most one more shard per
// member may move where the extra capacity (n mod m) changes hands.
func TestAssignMovesFew(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	var joinMoves, joinIdeal, leaveMoves, leaveIdeal float64
	for range 1000 {
		n, m := 1+rng.IntN(256), 1+rng.IntN(16)
		ms := members(m + 1)
		before := assignShards(n, ms[:m], nil)
		after := assignShards(n, ms, before)
		newShare := counts(after)[ms[m]]
		if got := moves(before, after); got > newShare+m {
			t.Fatalf("join n=%d m=%d→%d: %d shards moved, the newcomer's share is %d", n, m, m+1, got, newShare)
		} else {
			joinMoves += float64(got)
			joinIdeal += float64(newShare)
		}
		if m == 1 {
			continue
		}
		leaver := ms[rng.IntN(m)]
		rest := slices.DeleteFunc(slices.Clone(ms[:m]), func(id string) bool { return id == leaver })
		gone := assignShards(n, rest, before)
		lost := counts(before)[leaver]
		if got := moves(before, gone); got > lost+len(rest) {
			t.Fatalf("leave n=%d m=%d→%d: %d shards moved, the leaver held %d", n, m, m-1, got, lost)
		} else {
			leaveMoves += float64(got)
			leaveIdeal += float64(lost)
		}
	}
	t.Logf("shards moved per change, against the least possible: join %.3f×, leave %.3f×", joinMoves/joinIdeal, leaveMoves/leaveIdeal)
}

// Three replicas share 8 shards; a fourth joins and takes two, one from
// each of the replicas that had three; the others keep theirs.
func TestAssignAFourthReplica(t *testing.T) {
	ms := []string{"replica-a", "replica-b", "replica-c"}
	before := assignShards(8, ms, nil)
	after := assignShards(8, append(ms, "replica-d"), before)
	held := counts(after)
	if held["replica-a"] != 2 || held["replica-b"] != 2 || held["replica-c"] != 2 || held["replica-d"] != 2 {
		t.Errorf("held %v, want 2 each", held)
	}
	if n := moves(before, after); n != 2 {
		t.Errorf("%d shards moved, want 2", n)
	}
}

// Next in line: a member's next shards are exactly those it takes when
// some one other member leaves, never its own, and every shard has a
// member next in line for it.
func TestNextInLine(t *testing.T) {
	for _, c := range []struct{ n, m int }{{16, 2}, {16, 5}, {60, 5}, {7, 3}, {4, 8}} {
		ms := members(c.m)
		assign := assignShards(c.n, ms, nil)
		covered := make([]bool, c.n)
		for _, me := range ms {
			next := nextInLine(c.n, ms, assign, me)
			want := map[int]bool{}
			for _, gone := range ms {
				if gone == me {
					continue
				}
				others := slices.DeleteFunc(slices.Clone(ms), func(id string) bool { return id == gone })
				freed := slices.Clone(assign)
				for s := range freed {
					if freed[s] == gone {
						freed[s] = ""
					}
				}
				for s, id := range assignShards(c.n, others, freed) {
					if id == me && assign[s] != me {
						want[s] = true
					}
				}
			}
			for _, s := range next {
				if assign[s] == me {
					t.Errorf("%d shards, %d members: %s is next in line for shard %d, which it holds", c.n, c.m, me, s)
				}
				if !want[s] {
					t.Errorf("%d shards, %d members: %s is next in line for shard %d, which no single departure gives it", c.n, c.m, me, s)
				}
				covered[s] = true
			}
			if len(next) != len(want) {
				t.Errorf("%d shards, %d members: %s is next in line for %v, want the %d shards departures give it", c.n, c.m, me, next, len(want))
			}
		}
		for s, ok := range covered {
			if !ok && assign[s] != "" {
				t.Errorf("%d shards, %d members: nobody is next in line for shard %d", c.n, c.m, s)
			}
		}
		t.Logf("%d shards, %d members: each member holds about %d and is next in line for about %d", c.n, c.m, c.n/c.m, len(nextInLine(c.n, ms, assign, ms[0])))
	}
}
