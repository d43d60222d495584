package shard

import (
	"context"
	"fmt"
	"sync"
	"time"

	"k8s.io/client-go/tools/cache"

	"github.com/rein-k8s/rein/internal/renewal"
	"github.com/rein-k8s/rein/pkg/fence"
)

// gates is what the workers and the fence see of the shards: which
// take keys, which may write, each shard's handler context and its handlers
// in flight. The protocol opens and shuts them; its own lock is never held
// while a worker waits on this one.
type gates struct {
	namespace, group string
	n                int
	clock            interface{ Now() time.Time }
	// member is the member's own fence: the deadline of its renews. It is
	// the hold of writes in no shard's context (events, hooks).
	member *renewal.Renewal
	// drained is called (without the lock) when a shard that stopped
	// taking keys has no handler left in flight.
	drained func(s int)
	// prepared: opened shards wait for admit before they take keys
	// (Config.Prepare is set).
	prepared bool

	mu     sync.Mutex
	base   context.Context
	shards []gate
}

type gate struct {
	taking   bool // workers may start keys of the shard
	waiting  bool // open, but its keys wait for Config.Prepare
	writable bool // the shard's writes pass
	gen      uint64
	ctx      context.Context
	cancel   context.CancelCauseFunc
	inflight int
	token    int64
	// lastDeadline is the latest deadline handed to a write of this
	// generation: after a shut that cut handlers off, a request may be in
	// the network until then.
	lastDeadline time.Time
}

func newGates(namespace, group string, n int, clk interface{ Now() time.Time }) *gates {
	return &gates{namespace: namespace, group: group, n: n, clock: clk, base: context.Background(), shards: make([]gate, n)}
}

// setBase makes ctx the parent of the shards' handler contexts opened from
// now on (pkg/start passes the workers' context).
func (g *gates) setBase(ctx context.Context) {
	g.mu.Lock()
	g.base = ctx
	g.mu.Unlock()
}

// shardHold is the fence.Hold of one generation of one shard: a handler
// of the shard writes (to the apiserver, or through fence.Transport to
// anywhere) while that generation is writable here and the member's own
// fence is open, and no later than the member fence's deadline.
type shardHold struct {
	g     *gates
	shard int
	gen   uint64
	token fence.Token
}

func (h *shardHold) Token() fence.Token { return h.token }

func (h *shardHold) Deadline() (time.Time, error) {
	g := h.g
	deadline, err := g.member.Deadline()
	if err != nil {
		return time.Time{}, err
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	st := &g.shards[h.shard]
	if !st.writable || st.gen != h.gen {
		return time.Time{}, &fence.Error{
			Lease: h.token.Namespace + "/" + h.token.Lease, SinceRenew: -1,
			Reason: fmt.Sprintf("shard %d is no longer held by this replica", h.shard),
		}
	}
	if deadline.After(st.lastDeadline) {
		st.lastDeadline = deadline
	}
	return deadline, nil
}

// keyShard maps a queue key ("namespace/name", or "name" for a
// cluster-scoped object) to its shard.
func keyShard(key string, n int) int {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return Of("", key, n)
	}
	return Of(ns, name, n)
}

// enter admits a worker to key: the shard's context and a done function,
// or ok false when this replica does not hold the key's shard (the key is
// dropped; it is queued again when the shard starts here).
func (g *gates) enter(key string) (ctx context.Context, done func(), ok bool) {
	return g.enterShard(keyShard(key, g.n))
}

// enterShard is enter for a key of shard s.
func (g *gates) enterShard(s int) (ctx context.Context, done func(), ok bool) {
	if s < 0 || s >= g.n {
		return nil, nil, false
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	st := &g.shards[s]
	if !st.taking {
		return nil, nil, false
	}
	st.inflight++
	return st.ctx, func() { g.leave(s) }, true
}

// leave ends a handler of s. The count spans generations: a handler cut
// off when s was shut still counts if s opens here again, so a later drain
// waits for it too.
func (g *gates) leave(s int) {
	g.mu.Lock()
	st := &g.shards[s]
	st.inflight--
	idle := st.inflight == 0 && !st.taking
	g.mu.Unlock()
	if idle && g.drained != nil {
		g.drained(s)
	}
}

// open starts a new generation of shard s with fencing token token.
func (g *gates) open(s int, token int64) {
	g.mu.Lock()
	defer g.mu.Unlock()
	st := &g.shards[s]
	if st.cancel != nil {
		st.cancel(nil)
	}
	st.gen++
	// Every write of the shard's handlers, to the apiserver or through
	// fence.Transport, passes this generation's hold.
	hold := &shardHold{g: g, shard: s, gen: st.gen, token: fence.Token{Namespace: g.namespace, Lease: RecordName(g.group, s), Term: token}}
	st.ctx, st.cancel = context.WithCancelCause(fence.WithHold(g.base, hold))
	st.taking, st.waiting = !g.prepared, g.prepared
	st.writable, st.token = true, token
	st.lastDeadline = time.Time{}
}

// generations returns the generation of each of shards now.
func (g *gates) generations(shards []int) []uint64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make([]uint64, len(shards))
	for i, s := range shards {
		out[i] = g.shards[s].gen
	}
	return out
}

// admit lets the workers take the keys of each shard whose generation is
// still gens' and still waits (a shard handed on or reopened since is
// not); it returns the shards admitted.
func (g *gates) admit(shards []int, gens []uint64) []int {
	g.mu.Lock()
	defer g.mu.Unlock()
	var out []int
	for i, s := range shards {
		st := &g.shards[s]
		if st.gen == gens[i] && st.waiting {
			st.waiting, st.taking = false, true
			out = append(out, s)
		}
	}
	return out
}

// stopTaking lets no new key of s start; handlers in flight go on. It
// reports whether none is in flight.
func (g *gates) stopTaking(s int) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.shards[s].taking, g.shards[s].waiting = false, false
	return g.shards[s].inflight == 0
}

// inflight returns the handlers of s in flight.
func (g *gates) inflight(s int) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.shards[s].inflight
}

// shut closes s: no key starts, no write passes, and the handlers'
// context ends with cause. It returns the time until which a request of
// s may still be in the network: zero when no handler was cut off.
func (g *gates) shut(s int, cause error) (inNetworkUntil time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	st := &g.shards[s]
	st.taking, st.waiting, st.writable = false, false, false
	if st.cancel != nil {
		st.cancel(cause)
		st.cancel = nil
	}
	if st.inflight > 0 {
		return st.lastDeadline
	}
	return time.Time{}
}

// writable reports whether s's writes pass now (its generation is open
// and the member's fence is open).
func (g *gates) writable(s int) bool {
	if err := g.member.Err(); err != nil {
		return false
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.shards[s].writable
}

// held lists the shards that take keys.
func (g *gates) held() []int {
	g.mu.Lock()
	defer g.mu.Unlock()
	var out []int
	for s := range g.shards {
		if g.shards[s].writable {
			out = append(out, s)
		}
	}
	return out
}
