package shard

import (
	"encoding/binary"
	"hash/fnv"
	"slices"
	"strings"
)

// Of returns the shard of the object namespace/name among n shards (n >
// 0): a stable 64-bit FNV-1a hash of "namespace/name", modulo n. Changing
// n moves most keys.
func Of(namespace, name string, n int) int {
	h := fnv.New64a()
	_, _ = h.Write([]byte(namespace))
	_, _ = h.Write([]byte{'/'})
	_, _ = h.Write([]byte(name))
	return int(h.Sum64() % uint64(n))
}

// score is the rendezvous weight of member for shard: the member with the
// highest score wins the shard when it has room.
func score(shard int, member string) uint64 {
	h := fnv.New64a()
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(shard))
	_, _ = h.Write(b[:])
	_, _ = h.Write([]byte(member))
	// FNV's low bits mix poorly for inputs that differ in one byte: a
	// final avalanche (splitmix64's) spreads them.
	z := h.Sum64()
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// assignShards returns, for each of n shards, the member that should hold it.
//
// current[s] is the member that holds shard s now ("" for none, or a
// member no longer in members); it may be nil. members are identities, in
// any order (duplicates are ignored). With no members every shard gets
// "".
//
// Capacities: sorted by identity, the first n mod m members may hold
// ⌈n/m⌉ shards and the others ⌊n/m⌋, so held counts differ by at most
// one. First, every member keeps the shards it holds, up to its capacity
// (those where its rendezvous score is highest); then each remaining
// shard, in order, goes to the member with the highest score that has
// room. The result depends only on n, the set of members and current.
func assignShards(n int, members []string, current []string) []string {
	out := make([]string, n)
	ms := slices.Clone(members)
	slices.Sort(ms)
	ms = slices.Compact(ms)
	m := len(ms)
	if m == 0 || n <= 0 {
		return out
	}
	index := make(map[string]int, m)
	capacity := make([]int, m)
	for i, id := range ms {
		index[id] = i
		capacity[i] = n / m
		if i < n%m {
			capacity[i]++
		}
	}
	count := make([]int, m)

	// Holders keep what they hold, best-scored first, up to capacity.
	held := make([][]int, m)
	for s := 0; s < n && s < len(current); s++ {
		if i, ok := index[current[s]]; ok {
			held[i] = append(held[i], s)
		}
	}
	for i, shards := range held {
		slices.SortFunc(shards, func(a, b int) int { return cmpScoreDesc(score(a, ms[i]), score(b, ms[i]), a, b) })
		for _, s := range shards[:min(len(shards), capacity[i])] {
			out[s] = ms[i]
			count[i]++
		}
	}

	// The rest: highest score with room.
	for s := range n {
		if out[s] != "" {
			continue
		}
		best, bestScore := -1, uint64(0)
		for i, id := range ms {
			if count[i] >= capacity[i] {
				continue
			}
			if sc := score(s, id); best < 0 || sc > bestScore {
				best, bestScore = i, sc
			}
		}
		out[s] = ms[best]
		count[best]++
	}
	return out
}

// cmpScoreDesc orders by score, highest first, then by shard.
func cmpScoreDesc(sa, sb uint64, a, b int) int {
	switch {
	case sa > sb:
		return -1
	case sa < sb:
		return 1
	}
	return a - b
}

// members returns the live members by identity (UID as value), and the
// identities that take shards (live and not leaving).
func (p *protocol) membersLocked() (live map[string]string, takers []string) {
	live = map[string]string{}
	for _, s := range p.view {
		l := s.lease
		if l.Labels[LabelRole] != roleMember || stateOf(l) == stateDead || l.Spec.HolderIdentity == nil {
			continue
		}
		live[*l.Spec.HolderIdentity] = string(l.UID)
		if stateOf(l) != stateLeaving {
			takers = append(takers, *l.Spec.HolderIdentity)
		}
	}
	// This replica is what it last wrote, whatever the watch says yet.
	me := p.me()
	live[me.identity] = me.uid
	takers = slices.DeleteFunc(takers, func(id string) bool { return id == me.identity })
	if !p.self.leaving {
		takers = append(takers, me.identity)
	}
	return live, takers
}

// assignLocked computes from this replica's view who should hold each
// shard: assignShards over the members that take shards, with the current
// holders that are live. It also returns the live members (membersLocked).
func (p *protocol) assignLocked() (assign []string, live map[string]string) {
	live, takers := p.membersLocked()
	current := make([]string, p.cfg.Shards)
	for s := range current {
		if h := holderOf(p.record(s)); h.identity != "" && live[h.identity] == h.uid {
			current[s] = h.identity
		}
	}
	return assignShards(p.cfg.Shards, takers, current), live
}

// nextInLine returns the shards member me would be assigned if any one
// other member of takers left, with its shards free, that it is not
// assigned in assign: the shards it would take over first on a death.
// Each shard is in the result of at least one member other than its
// assignee (with two members or more).
func nextInLine(n int, takers, assign []string, me string) []int {
	var next []int
	in := make([]bool, n)
	freed := make([]string, len(assign))
	for _, gone := range takers {
		if gone == me {
			continue
		}
		others := slices.DeleteFunc(slices.Clone(takers), func(id string) bool { return id == gone })
		for s, id := range assign {
			freed[s] = id
			if id == gone {
				freed[s] = ""
			}
		}
		for s, id := range assignShards(n, others, freed) {
			if id == me && assign[s] != me && !in[s] {
				in[s] = true
				next = append(next, s)
			}
		}
	}
	slices.Sort(next)
	return next
}

// takeNextInLine returns the shards this replica is next in line for
// (nextInLine over its view) and whether they changed since the last
// call. It recomputes only when the takers or the assignment changed:
// the cost is one assignment per other member. The assignment is where
// shards go when nobody dies, so it stands for the holders the group
// converges on, not those of the moment.
func (p *protocol) takeNextInLine() (next []int, changed bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var key string
	if p.self.lease != nil && !p.self.leaving && p.synced {
		_, takers := p.membersLocked()
		slices.Sort(takers)
		assign, _ := p.assignLocked()
		key = strings.Join(takers, "\x00") + "\x01" + strings.Join(assign, "\x00")
		if key != p.nextKey {
			next = nextInLine(p.cfg.Shards, takers, assign, p.cfg.Identity)
		} else {
			next = p.next
		}
	}
	p.nextKey = key
	changed = !slices.Equal(next, p.next)
	p.next = next
	return slices.Clone(next), changed
}
