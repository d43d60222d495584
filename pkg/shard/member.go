package shard

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rein-k8s/rein/internal/leasewatch"
	"github.com/rein-k8s/rein/pkg/fence"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	coordinationclient "k8s.io/client-go/kubernetes/typed/coordination/v1"
)

// Member is one replica's membership of a sharded group: it runs the
// protocol against the apiserver (a list and watch of the group's Leases,
// and the writes the protocol makes), and is the gate its workers pass
// (Enter) and the fence its writes pass (the shards' holds, and Fence).
type Member struct {
	cfg    Config
	p      *protocol
	leases coordinationclient.LeaseInterface
	wake   chan struct{}
	ran    atomic.Bool
}

// NewMember checks cfg and returns a member that joins when Run starts.
// leases must reach the apiserver without the workers' write guard (the
// member's own writes are how its fence opens).
func NewMember(cfg Config, leases coordinationclient.LeasesGetter) (*Member, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("shard: %w", err)
	}
	if leases == nil {
		return nil, errors.New("shard: no Lease client")
	}
	cfg.withDefaults()
	cfg.Logger = cfg.Logger.WithField("shardGroup", cfg.Namespace+"/"+cfg.Group)
	m := &Member{cfg: cfg, leases: leases.Leases(cfg.Namespace), wake: make(chan struct{}, 1)}
	m.p = newProtocol(cfg, &leaseStore{leases: m.leases, namespace: cfg.Namespace, timeout: cfg.RenewDeadline / 2})
	m.p.gates.drained = func(int) { m.poke() }
	m.p.gates.prepared = cfg.Prepare != nil
	return m, nil
}

func (m *Member) poke() {
	select {
	case m.wake <- struct{}{}:
	default:
	}
}

// SetHandlerContext makes ctx the parent of the handler contexts of shards
// that start from now on: pkg/start passes the workers' context.
func (m *Member) SetHandlerContext(ctx context.Context) { m.p.gates.setBase(ctx) }

// Enter is the workers' gate (the engine's KeyGate): key runs here only while
// its shard is held, in the shard's context.
func (m *Member) Enter(key string) (context.Context, func(), bool) { return m.p.gates.enter(key) }

// Fence is the member's own fence, a fence.Hold: open while this
// replica's member Lease was renewed within the renew deadline. pkg/start
// makes it the fallback hold of the group's clients: a write in no shard's
// context (an event, a hook) passes under it; a handler's write passes
// under its shard's hold, which its context carries.
func (m *Member) Fence() fence.Hold { return m.p.fence }

// Held lists the shards running here now.
func (m *Member) Held() []int { return m.p.gates.held() }

// EnterShard is Enter for a key of shard s: for keys whose shard the
// caller knows from elsewhere than the key (a partitioned cache maps a
// key to its object's shard by UID or namespace).
func (m *Member) EnterShard(s int) (context.Context, func(), bool) { return m.p.gates.enterShard(s) }

// KeyShard returns the shard of a queue key ("namespace/name" or "name").
func (m *Member) KeyShard(key string) int { return keyShard(key, m.cfg.Shards) }

// Run joins the group and takes part until ctx ends; then it leaves
// gracefully: it marks its member Lease leaving, hands each shard on once
// its handlers in flight have returned (DrainGrace at most), and deletes
// the member Lease. Leaving is bounded by leaveTimeout; shards not handed
// on by then are taken over when the member Lease expires. Run returns
// nil after leaving; it may be called once (a second call returns an
// error).
func (m *Member) Run(ctx context.Context, leaveTimeout time.Duration) error {
	if !m.ran.CompareAndSwap(false, true) {
		return errors.New("shard: Member.Run called twice")
	}
	loopCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	defer stop()
	watchDone := make(chan struct{})
	go func() {
		defer close(watchDone)
		m.watch(loopCtx)
	}()
	defer func() { stop(); <-watchDone }()
	// Preparations end with loopCtx: stop it before waiting for them.
	var preparing sync.WaitGroup
	defer func() { stop(); preparing.Wait() }()

	timer := time.NewTimer(0)
	defer timer.Stop()
	var leaveBy <-chan time.Time
	ctxDone := ctx.Done()
	for {
		select {
		case <-ctxDone:
			ctxDone = nil
			m.p.leave()
			m.cfg.Logger.Info("leaving the shard group: handing every shard on")
			t := time.NewTimer(leaveTimeout)
			defer t.Stop()
			leaveBy = t.C
		case <-leaveBy:
			m.cfg.Logger.WithField("held", m.Held()).Warn("could not hand every shard on in time; the rest move when this replica's member lease expires")
			m.p.mu.Lock()
			m.p.shutAllLocked(errors.New("leaving: out of time"))
			m.p.mu.Unlock()
			return nil
		case <-m.wake:
		case <-timer.C:
		}
		next := m.p.step(loopCtx)
		// Stops first: a shard stopped and started again is dropped,
		// then prepared.
		if stopped := m.p.takeStopped(); len(stopped) > 0 && m.cfg.OnStop != nil {
			m.cfg.OnStop(stopped)
		}
		if m.cfg.OnNext != nil {
			if next, changed := m.p.takeNextInLine(); changed {
				m.cfg.OnNext(next)
			}
		}
		switch started := m.p.takeStarted(); {
		case len(started) == 0:
		case m.cfg.Prepare != nil:
			gens := m.p.gates.generations(started)
			preparing.Go(func() { m.prepare(loopCtx, started, gens) })
		case m.cfg.OnStart != nil:
			m.cfg.OnStart(started)
		}
		if m.p.hasLeft() {
			return nil
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		timer.Reset(max(next, time.Millisecond))
	}
}

// prepare calls Config.Prepare for shards (of generations gens) until it
// succeeds or ctx ends, then admits those still waiting and calls OnStart
// with them.
func (m *Member) prepare(ctx context.Context, shards []int, gens []uint64) {
	for {
		err := m.cfg.Prepare(ctx, shards)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return
		}
		m.cfg.Logger.WithError(err).WithField("shards", shards).Warn("shards started here take no key until they are prepared; retrying")
		t := m.cfg.Clock.NewTimer(m.cfg.RetryPeriod)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C():
		}
	}
	if admitted := m.p.gates.admit(shards, gens); len(admitted) > 0 && m.cfg.OnStart != nil {
		m.cfg.OnStart(admitted)
	}
}

// watch keeps the protocol's view of the group's Leases (internal/leasewatch).
func (m *Member) watch(ctx context.Context) {
	loop := leasewatch.Loop{
		Leases:      m.leases,
		Selector:    metav1.ListOptions{LabelSelector: labels.SelectorFromSet(labels.Set{LabelGroup: m.cfg.Group}).String()},
		Clock:       m.cfg.Clock,
		RetryPeriod: m.cfg.RetryPeriod,
		Observer:    (*memberObserver)(m),
	}
	loop.Run(ctx)
}

// memberObserver is the member as the lease watch loop sees it: every
// observation goes to the protocol and wakes the step loop.
type memberObserver Member

func (o *memberObserver) Listed(items []coordinationv1.Lease) {
	o.p.relisted(items)
	(*Member)(o).poke()
}

func (o *memberObserver) Observed(l *coordinationv1.Lease, deleted bool) {
	o.p.observe(l, deleted)
	(*Member)(o).poke()
}

func (o *memberObserver) Failed(op string, err error) {
	o.p.watchBroken()
	o.cfg.Logger.WithError(explain(op, o.cfg.Namespace, err)).Warnf("cannot %s the group's leases; retrying", op)
}

func (o *memberObserver) Recovered(string) {}

// explain restates a 403 with the permissions the group needs.
func explain(verb, namespace string, err error) error {
	if apierrors.IsForbidden(err) {
		return fmt.Errorf("cannot %s leases.coordination.k8s.io in namespace %q: RBAC must allow get, list, watch, create, update and delete on leases (apiGroup coordination.k8s.io) in namespace %q for a sharded group: %w", verb, namespace, namespace, err)
	}
	return fmt.Errorf("%s leases in %q: %w", verb, namespace, err)
}

// leaseStore is the protocol's store on the apiserver.
type leaseStore struct {
	leases    coordinationclient.LeaseInterface
	namespace string
	timeout   time.Duration
}

func (s *leaseStore) Create(ctx context.Context, l *coordinationv1.Lease) (*coordinationv1.Lease, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	out, err := s.leases.Create(ctx, l, metav1.CreateOptions{})
	return out, explainWrite("create", s.namespace, err)
}

func (s *leaseStore) Update(ctx context.Context, l *coordinationv1.Lease) (*coordinationv1.Lease, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	out, err := s.leases.Update(ctx, l, metav1.UpdateOptions{})
	return out, explainWrite("update", s.namespace, err)
}

func (s *leaseStore) Get(ctx context.Context, name string) (*coordinationv1.Lease, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	return s.leases.Get(ctx, name, metav1.GetOptions{})
}

func (s *leaseStore) Delete(ctx context.Context, name, uid, rv string) error {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	u := types.UID(uid)
	err := s.leases.Delete(ctx, name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &u, ResourceVersion: &rv}})
	return explainWrite("delete", s.namespace, err)
}

// explainWrite keeps API statuses matchable (apierrors.IsConflict on the
// result still holds) and adds the RBAC hint to a 403.
func explainWrite(verb, namespace string, err error) error {
	if err != nil && apierrors.IsForbidden(err) {
		return explain(verb, namespace, err)
	}
	return err
}
