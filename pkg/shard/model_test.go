package shard

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strconv"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/rein-k8s/rein/pkg/fence"
)

// The model test runs the protocol of several replicas against an
// in-memory Lease store with a fake clock, under a random schedule of
// joins, graceful leaves, kills, pauses past the lease, watch gaps, lost
// and late-delivered writes, and handlers that write. At every step it
// asserts that no shard is writable by two replicas, and at every write
// that no other replica's write to the same shard may still land.

var leasesResource = schema.GroupResource{Group: "coordination.k8s.io", Resource: "leases"}

// world is the store and the network between it and the replicas.
type world struct {
	t       *testing.T
	clock   *clocktesting.FakeClock
	rng     *rand.Rand
	objects map[string]*coordinationv1.Lease
	rv, uid int
	log     []watchEvent
	// late holds writes whose answer was lost and that the network
	// delivers at a later step (or never).
	late []func()
}

type watchEvent struct {
	lease   *coordinationv1.Lease
	deleted bool
}

var errLost = errors.New("model: the answer was lost in the network")

func (w *world) record(l *coordinationv1.Lease, deleted bool) {
	w.log = append(w.log, watchEvent{lease: l.DeepCopy(), deleted: deleted})
}

func (w *world) create(l *coordinationv1.Lease) (*coordinationv1.Lease, error) {
	if _, ok := w.objects[l.Name]; ok {
		return nil, apierrors.NewAlreadyExists(leasesResource, l.Name)
	}
	w.rv++
	w.uid++
	out := l.DeepCopy()
	out.ResourceVersion = strconv.Itoa(w.rv)
	out.UID = types.UID("uid-" + strconv.Itoa(w.uid))
	w.objects[l.Name] = out
	w.record(out, false)
	return out.DeepCopy(), nil
}

func (w *world) update(l *coordinationv1.Lease) (*coordinationv1.Lease, error) {
	cur, ok := w.objects[l.Name]
	if !ok {
		return nil, apierrors.NewNotFound(leasesResource, l.Name)
	}
	if cur.ResourceVersion != l.ResourceVersion || cur.UID != l.UID {
		return nil, apierrors.NewConflict(leasesResource, l.Name, errors.New("the object has been modified"))
	}
	w.rv++
	out := l.DeepCopy()
	out.ResourceVersion = strconv.Itoa(w.rv)
	w.objects[l.Name] = out
	w.record(out, false)
	return out.DeepCopy(), nil
}

func (w *world) delete(name, uid, rv string) error {
	cur, ok := w.objects[name]
	if !ok {
		return apierrors.NewNotFound(leasesResource, name)
	}
	if string(cur.UID) != uid || cur.ResourceVersion != rv {
		return apierrors.NewConflict(leasesResource, name, errors.New("precondition failed"))
	}
	delete(w.objects, name)
	w.record(cur, true)
	return nil
}

// replicaStore is one replica's connection to the world: it may lose
// answers.
type replicaStore struct {
	w     *world
	lossy bool
}

// deliver runs op now, later, or never, when the answer is lost.
func (s *replicaStore) deliver(op func() error) error {
	if !s.lossy || s.w.rng.IntN(10) != 0 {
		return op()
	}
	switch s.w.rng.IntN(3) {
	case 0:
		_ = op() // landed; the answer did not
	case 1:
		s.w.late = append(s.w.late, func() { _ = op() })
	}
	return errLost
}

func (s *replicaStore) Create(_ context.Context, l *coordinationv1.Lease) (out *coordinationv1.Lease, err error) {
	lerr := s.deliver(func() error { out, err = s.w.create(l); return err })
	if lerr == errLost {
		return nil, lerr
	}
	return out, err
}

func (s *replicaStore) Update(_ context.Context, l *coordinationv1.Lease) (out *coordinationv1.Lease, err error) {
	lerr := s.deliver(func() error { out, err = s.w.update(l); return err })
	if lerr == errLost {
		return nil, lerr
	}
	return out, err
}

func (s *replicaStore) Get(_ context.Context, name string) (*coordinationv1.Lease, error) {
	cur, ok := s.w.objects[name]
	if !ok {
		return nil, apierrors.NewNotFound(leasesResource, name)
	}
	return cur.DeepCopy(), nil
}

func (s *replicaStore) Delete(_ context.Context, name, uid, rv string) error {
	return s.deliver(func() error { return s.w.delete(name, uid, rv) })
}

// replica is one process of the model.
type replica struct {
	name    string
	p       *protocol
	store   *replicaStore
	cursor  int  // next watch event to deliver
	watch   bool // the watch delivers (false: broken, relist needed)
	paused  bool
	stopped bool // Stop was called: leaving
	ops     []*op
}

// op is a handler in flight, and its write on the way to the store.
type op struct {
	shard   int
	ctx     context.Context
	done    func()
	writing *window
}

// window is when a write of a replica to a shard may land: from its send
// to its answer, or to its deadline when it was cut off unanswered.
type window struct {
	replica        string
	sent, deadline time.Time
	answered       time.Time // zero while in flight
}

func (w *window) end() time.Time {
	if w.answered.IsZero() {
		return w.deadline
	}
	return w.answered
}

const (
	modelShards = 12
	modelKeys   = 120
)

type model struct {
	*world
	replicas []*replica
	next     int
	windows  [modelShards]map[string]*window // per shard, the last write window of each replica
	keys     []string
	steps    int
	stats    map[string]int
}

func newModel(t *testing.T, seed uint64) *model {
	m := &model{
		world: &world{t: t, clock: clocktesting.NewFakeClock(time.Unix(1_800_000_000, 0)), rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), objects: map[string]*coordinationv1.Lease{}},
		stats: map[string]int{},
	}
	for s := range m.windows {
		m.windows[s] = map[string]*window{}
	}
	for i := range modelKeys {
		m.keys = append(m.keys, fmt.Sprintf("ns/obj-%d", i))
	}
	return m
}

func (m *model) start() *replica {
	m.next++
	name := fmt.Sprintf("r%d", m.next)
	logger := logrus.New()
	logger.SetOutput(io.Discard)
	cfg := Config{
		Namespace: "ns", Group: "g", Shards: modelShards, Identity: name,
		LeaseDuration: 15 * time.Second, RenewDeadline: 10 * time.Second, RetryPeriod: 2 * time.Second,
		DrainGrace: 3 * time.Second, Clock: m.clock, Logger: logrus.NewEntry(logger),
	}
	cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		m.t.Fatal(err)
	}
	r := &replica{name: name, store: &replicaStore{w: m.world, lossy: true}}
	r.p = newProtocol(cfg, r.store)
	r.p.sequentialWrites = true
	r.p.events = func(e event) { m.stats["event "+e.Kind]++ }
	m.replicas = append(m.replicas, r)
	m.relist(r)
	return r
}

func (m *model) relist(r *replica) {
	items := make([]coordinationv1.Lease, 0, len(m.objects))
	for _, l := range m.objects {
		items = append(items, *l.DeepCopy())
	}
	r.p.relisted(items)
	r.cursor, r.watch = len(m.log), true
}

func (m *model) remove(r *replica) {
	for i, x := range m.replicas {
		if x == r {
			m.replicas = append(m.replicas[:i], m.replicas[i+1:]...)
			return
		}
	}
}

func (m *model) pick() *replica {
	if len(m.replicas) == 0 {
		return nil
	}
	return m.replicas[m.rng.IntN(len(m.replicas))]
}

// checkOneWriter asserts that no shard is writable by two replicas now
// (paused ones included: their next write asks the same clock).
func (m *model) checkOneWriter() {
	for s := range modelShards {
		var writers []string
		for _, r := range m.replicas {
			if r.p.gates.writable(s) {
				writers = append(writers, r.name)
			}
		}
		if len(writers) > 1 {
			m.t.Fatalf("step %d: shard %d writable by %v at once", m.steps, s, writers)
		}
	}
}

// write sends a write of o's handler, if the guard lets it.
func (m *model) write(r *replica, o *op) {
	if o.writing != nil || o.ctx.Err() != nil {
		return
	}
	deadline, err := holdDeadline(r.p, o.ctx)
	if err != nil {
		m.stats["writes refused"]++
		return
	}
	now := m.clock.Now()
	for other, w := range m.windows[o.shard] {
		if other != r.name && w.end().After(now) {
			m.t.Fatalf("step %d: %s writes shard %d while a write of %s (sent %v ago) may still land until %v from now",
				m.steps, r.name, o.shard, other, now.Sub(w.sent), w.end().Sub(now))
		}
	}
	o.writing = &window{replica: r.name, sent: now, deadline: deadline}
	m.windows[o.shard][r.name] = o.writing
	m.stats["writes"]++
}

func (m *model) answer(o *op) {
	if o.writing == nil {
		return
	}
	if o.ctx.Err() == nil {
		// Answered: it landed by now. A write whose context ended in
		// flight keeps its deadline as its end.
		o.writing.answered = m.clock.Now()
	}
	o.writing = nil
}

func (m *model) step() {
	m.steps++
	ctx := context.Background()
	switch k := m.rng.IntN(1000); {
	case k < 150: // time passes
		m.clock.Step(time.Duration(m.rng.IntN(1000)) * time.Millisecond)
	case k < 350: // a replica steps
		if r := m.pick(); r != nil && !r.paused {
			r.p.step(ctx)
			m.stats["protocol steps"]++
		}
	case k < 500: // the watch delivers to a replica
		if r := m.pick(); r != nil && !r.paused && r.watch {
			for n := 1 + m.rng.IntN(2); n > 0 && r.cursor < len(m.log); n-- {
				ev := m.log[r.cursor]
				r.cursor++
				r.p.observe(ev.lease.DeepCopy(), ev.deleted)
			}
		}
	case k < 900: // handlers
		r := m.pick()
		if r == nil || r.paused {
			break
		}
		switch m.rng.IntN(3) {
		case 0:
			key := m.keys[m.rng.IntN(len(m.keys))]
			if hctx, done, ok := r.p.gates.enter(key); ok {
				r.ops = append(r.ops, &op{shard: keyShard(key, modelShards), ctx: hctx, done: done})
			}
		case 1:
			if len(r.ops) > 0 {
				o := r.ops[m.rng.IntN(len(r.ops))]
				if o.writing == nil {
					m.write(r, o)
				} else {
					m.answer(o)
				}
			}
		case 2:
			if len(r.ops) > 0 {
				i := m.rng.IntN(len(r.ops))
				o := r.ops[i]
				m.answer(o)
				r.ops = append(r.ops[:i], r.ops[i+1:]...)
				o.done()
			}
		}
	case k < 930: // the network delivers a late write
		if len(m.late) > 0 {
			i := m.rng.IntN(len(m.late))
			f := m.late[i]
			m.late = append(m.late[:i], m.late[i+1:]...)
			f()
			m.stats["late writes delivered"]++
		}
	case k < 945: // a watch breaks, or relists
		if r := m.pick(); r != nil && !r.paused {
			if r.watch {
				r.watch = false
				r.p.watchBroken()
			} else {
				m.relist(r)
			}
		}
	case k < 950: // pause past the lease (SIGSTOP), or resume
		if r := m.pick(); r != nil {
			r.paused = !r.paused
			m.stats["pauses"]++
		}
	case k < 965: // join
		if len(m.replicas) < 5 {
			m.start()
			m.stats["joins"]++
		}
	case k < 970: // kill (SIGKILL): its writes in the network may still land
		if r := m.pick(); r != nil && len(m.replicas) > 1 {
			m.remove(r)
			m.stats["kills"]++
		}
	case k < 978: // graceful stop
		if r := m.pick(); r != nil && !r.stopped {
			r.stopped = true
			r.p.leave()
			m.stats["leaves"]++
		}
	default: // a stopped replica that has left exits
		for _, r := range m.replicas {
			if r.p.hasLeft() {
				m.remove(r)
				break
			}
		}
	}
	m.checkOneWriter()
	for _, r := range m.replicas {
		m.stats["replica-steps"]++
		if r.paused {
			m.stats["replica-steps paused"]++
		}
		if r.p.fence.Err() == nil {
			m.stats["replica-steps fence open"]++
		}
	}
	for s := range modelShards {
		for _, r := range m.replicas {
			if r.p.gates.writable(s) {
				m.stats["shard-steps held"]++
			}
		}
	}
}

// settle runs without faults until the group has converged: every shard
// held by one live replica, counts within one of each other.
func (m *model) settle() {
	ctx := context.Background()
	for _, r := range m.replicas {
		r.store.lossy = false
		r.paused = false
		if !r.watch {
			m.relist(r)
		}
		for _, o := range r.ops {
			m.answer(o)
			o.done()
		}
		r.ops = nil
	}
	m.late = nil
	for round := range 200 {
		m.clock.Step(500 * time.Millisecond)
		for _, r := range m.replicas {
			for r.cursor < len(m.log) {
				ev := m.log[r.cursor]
				r.cursor++
				r.p.observe(ev.lease.DeepCopy(), ev.deleted)
			}
			r.p.step(ctx)
			m.checkOneWriter()
		}
		if m.converged() == nil && round > 40 {
			return
		}
	}
	m.t.Fatalf("after %d steps the group did not converge: %v", m.steps, m.converged())
}

func (m *model) converged() error {
	counts := map[string]int{}
	var live int
	for _, r := range m.replicas {
		if !r.p.hasLeft() {
			live++
			counts[r.name] = 0
		}
	}
	for s := range modelShards {
		var holders []string
		for _, r := range m.replicas {
			if r.p.gates.writable(s) {
				holders = append(holders, r.name)
			}
		}
		if live > 0 && len(holders) != 1 {
			return fmt.Errorf("shard %d held by %v", s, holders)
		}
		for _, h := range holders {
			counts[h]++
		}
	}
	lo, hi := modelShards, 0
	for _, r := range m.replicas {
		if r.p.hasLeft() || r.stopped {
			continue
		}
		lo, hi = min(lo, counts[r.name]), max(hi, counts[r.name])
	}
	if hi-lo > 1 {
		return fmt.Errorf("held counts %v differ by more than one", counts)
	}
	return nil
}

func TestModel(t *testing.T) {
	seeds := 12
	if testing.Short() {
		seeds = 3
	}
	total := map[string]int{}
	for seed := range uint64(seeds) {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			m := newModel(t, seed)
			m.start()
			m.start()
			for range 4000 {
				m.step()
			}
			m.settle()
			for k, v := range m.stats {
				total[k] += v
			}
			total["steps"] += m.steps
		})
	}
	t.Logf("model: %v", total)
	if total["steps"] < 10_000 {
		t.Errorf("only %d steps", total["steps"])
	}
}

// holdDeadline is what fence.Transport asks of a write in ctx: the hold ctx
// carries (a shard's), else the member's fence.
func holdDeadline(p *protocol, ctx context.Context) (time.Time, error) {
	if h, ok := fence.HoldFrom(ctx); ok {
		return h.Deadline()
	}
	return p.fence.Deadline()
}
