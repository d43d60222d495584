package shard

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/sirupsen/logrus"
	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/clock"

	"github.com/rein-k8s/rein/pkg/fence"
)

// Store is what the protocol needs of the apiserver: the group's Leases
// in one namespace. Update and Delete are conditional (the object's
// resourceVersion; Delete also its UID). An error that is not an API
// status (a timeout, a cut connection) leaves the outcome unknown, and the
// protocol treats it so.
type Store interface {
	Create(ctx context.Context, l *coordinationv1.Lease) (*coordinationv1.Lease, error)
	Update(ctx context.Context, l *coordinationv1.Lease) (*coordinationv1.Lease, error)
	Get(ctx context.Context, name string) (*coordinationv1.Lease, error)
	Delete(ctx context.Context, name, uid, resourceVersion string) error
}

// phase is where one shard stands for this replica.
type phase int

const (
	idle     phase = iota // not held here (as far as this replica does anything about it)
	running               // held: its keys run here
	draining              // held, handing off: no new keys; waiting for the ones in flight
	unknown               // a write of its record has an unknown outcome
)

func (p phase) String() string {
	return [...]string{"idle", "running", "draining", "unknown"}[p]
}

type shardRun struct {
	phase phase
	// drainFrom is when the drain began; shutAt is when the shard was
	// shut and inNetworkUntil how long a request cut off then may still be
	// in the network (zero: none was cut off).
	drainFrom, shutAt, inNetworkUntil time.Time
	// unknownAt is the record's move count when a write went unknown: a
	// newer record shows what happened.
	unknownAt int64
	// orphanSince is when this replica first saw the record name nobody
	// live.
	orphanSince time.Time
	// startedAt is when the shard started here (for handoff metrics).
	startedAt time.Time
}

type seen struct {
	lease *coordinationv1.Lease
	// changedAt is when, by this replica's clock, the record last changed
	// in its view: the only time it trusts (as pkg/leader).
	changedAt time.Time
}

// protocol is one replica's side of the sharding protocol (see the
// package documentation): its member Lease, its view of the group's Leases
// and the moves it makes. Its methods are called from one goroutine at a
// time (the runner's, or a model test's), under mu; the gates are shared
// with the workers.
type protocol struct {
	cfg   Config
	store Store
	clock clock.Clock
	log   *logrus.Entry
	gates *gates
	// events receives what the runner reports (moves, for metrics); may
	// be nil.
	events func(Event)
	// trace, when set (tests), receives each shard's opening here and the
	// instant its writes stopped here.
	trace func(s int, open bool, at time.Time)

	mu   sync.Mutex
	self struct {
		lease *coordinationv1.Lease // last write of the member Lease; nil when not joined
		// lastRenewSent is the send time of the last successful write of
		// the member Lease: the member fence is open until RenewDeadline
		// after it.
		lastRenewSent, lastRenewTry   time.Time
		lastJoinTry                   time.Time
		leaving, leavingWritten, left bool
	}
	// fence is the member fence, with its own lock: a write must never
	// wait for a protocol write in flight.
	fence   *fence.Renewal
	view    map[string]*seen
	synced  bool // a list has answered
	healthy bool // the watch delivers
	shards  []shardRun
	// gcTried remembers the dead member Leases a delete was sent for, by
	// resourceVersion, so that one is not deleted twice.
	gcTried map[string]string
	// quietUntil holds back moves after one failed for another reason
	// than a conflict (an apiserver error, missing RBAC, a timeout).
	quietUntil time.Time
	// started collects the shards started since takeStarted last ran.
	started []int
	// sequentialWrites sends a step's record writes one after the other
	// (the model test's store is not safe for concurrent use).
	sequentialWrites bool
}

// Event is a move this replica made or saw, for metrics and logs.
type Event struct {
	Shard int
	// Kind is "started" (the shard runs here), "stopped" (handed off,
	// released or lost), "marked-dead" (this replica marked a member dead).
	Kind string
	// Held is how long the shard ran here (stopped), or how long it was
	// unowned before it started here, as far as this replica saw (started).
	Held time.Duration
	Peer string
}

func newProtocol(cfg Config, store Store) *protocol {
	p := &protocol{cfg: cfg, store: store, clock: cfg.Clock, log: cfg.Logger,
		view: map[string]*seen{}, shards: make([]shardRun, cfg.Shards), gcTried: map[string]string{}}
	p.gates = newGates(cfg.Namespace, cfg.Group, cfg.Shards, cfg.Clock)
	p.fence = fence.NewRenewal(cfg.Namespace+"/"+MemberLeaseName(cfg.Group, cfg.Identity), cfg.RenewDeadline, cfg.Clock,
		"this replica is not a member of the group")
	p.gates.member = p.fence
	return p
}

func (p *protocol) me() incarnation {
	if p.self.lease == nil {
		return incarnation{identity: p.cfg.Identity}
	}
	return incarnation{identity: p.cfg.Identity, uid: string(p.self.lease.UID)}
}

// publishFenceLocked hands the member's state to the fence: open from
// the send of the last successful write of this incarnation's member Lease.
func (p *protocol) publishFenceLocked() {
	if p.self.lease == nil {
		p.fence.Close("this replica is not a member of the group")
		return
	}
	p.fence.Open(p.self.lastRenewSent, fence.Token{})
}

// fenceClosedAt is when the member fence closed (or closes), for traces.
func (p *protocol) fenceClosesAtLocked() time.Time {
	if p.self.lease == nil || p.self.lastRenewSent.IsZero() {
		return time.Time{}
	}
	return p.self.lastRenewSent.Add(p.cfg.RenewDeadline)
}

func (p *protocol) fenceOpenLocked() bool {
	return p.self.lease != nil && !p.self.lastRenewSent.IsZero() && p.clock.Since(p.self.lastRenewSent) < p.cfg.RenewDeadline
}

// ---- observations -------------------------------------------------------

// observe records a Lease of the group as the watch (or a write's answer)
// shows it; deleted reports a deletion.
func (p *protocol) observe(l *coordinationv1.Lease, deleted bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.observeLocked(l, deleted)
}

func (p *protocol) observeLocked(l *coordinationv1.Lease, deleted bool) {
	now := p.clock.Now()
	prev := p.view[l.Name]
	if deleted {
		if prev != nil && prev.lease.UID == l.UID {
			delete(p.view, l.Name)
		}
		return
	}
	if l.Labels[LabelRole] == roleShard && prev != nil && prev.lease.UID == l.UID &&
		transitionsOf(l) <= transitionsOf(prev.lease) {
		return // late: this replica's view of a record only moves forward
	}
	if prev != nil && prev.lease.ResourceVersion == l.ResourceVersion && prev.lease.UID == l.UID {
		return
	}
	p.view[l.Name] = &seen{lease: l, changedAt: now}
	switch l.Labels[LabelRole] {
	case roleShard:
		if s, ok := recordShard(p.cfg.Group, l.Name, p.cfg.Shards); ok {
			if st := &p.shards[s]; st.phase == unknown && transitionsOf(l) > st.unknownAt {
				st.phase = idle // the record shows what happened; reconcile from it
			}
		}
	case roleMember:
		if p.self.lease != nil && l.UID == p.self.lease.UID && stateOf(l) == stateDead {
			p.incarnationOverLocked("another replica marked this replica's member lease dead (it was not renewed for its lease duration)")
		}
	}
}

// relisted replaces the view with a list's items: the watch restarted.
func (p *protocol) relisted(items []coordinationv1.Lease) {
	p.mu.Lock()
	defer p.mu.Unlock()
	names := map[string]bool{}
	for i := range items {
		names[items[i].Name] = true
		p.observeLocked(&items[i], false)
	}
	for name, s := range p.view {
		if !names[name] {
			p.observeLocked(s.lease, true)
		}
	}
	p.synced = true
	p.resumedLocked()
}

// resumedLocked says the watch delivers again (a list answered after a
// gap): every member's countdown restarts now, since not seeing a renew
// during a gap is no evidence of death.
func (p *protocol) resumedLocked() {
	now := p.clock.Now()
	for _, s := range p.view {
		if s.lease.Labels[LabelRole] == roleMember {
			s.changedAt = now
		}
	}
	p.healthy = true
}

// watchBroken says the watch stopped delivering.
func (p *protocol) watchBroken() {
	p.mu.Lock()
	p.healthy = false
	p.mu.Unlock()
}

// ---- own membership ------------------------------------------------------

// incarnationOverLocked ends this incarnation: every shard shuts at once
// (its holder may already be someone else), and the next step rejoins as
// a new incarnation (unless leaving).
func (p *protocol) incarnationOverLocked(why string) {
	if p.self.lease == nil {
		return
	}
	p.log.WithField("reason", why).Warn("this replica's membership ended; its shards stop now and it rejoins as a new member")
	p.shutAllLocked(errors.New(why))
	p.self.lease = nil
	p.self.lastRenewSent = time.Time{}
	p.publishFenceLocked()
	if p.self.leaving {
		p.self.left = true
	}
}

func (p *protocol) shutAllLocked(cause error) {
	for s := range p.shards {
		st := &p.shards[s]
		if st.phase == running || st.phase == draining {
			p.stopShardLocked(s, cause)
		}
	}
}

// stopShardLocked shuts s here and forgets it (its record may still name
// this incarnation: the next step decides).
func (p *protocol) stopShardLocked(s int, cause error) {
	st := &p.shards[s]
	now := p.clock.Now()
	st.inNetworkUntil = p.gates.shut(s, cause)
	st.shutAt = now
	if p.trace != nil {
		// Writes stopped at the shut, or earlier when the member fence
		// closed first (the guard reads the clock).
		end := now
		if c := p.fenceClosesAtLocked(); !c.IsZero() && c.Before(end) {
			end = c
		}
		p.trace(s, false, end)
	}
	held := now.Sub(st.startedAt)
	st.phase = idle
	p.emit(Event{Shard: s, Kind: "stopped", Held: held})
}

func (p *protocol) emit(e Event) {
	if p.events != nil {
		p.events(e)
	}
}

func (p *protocol) memberLease() *coordinationv1.Lease {
	now := metav1.NowMicro()
	secs := int32(p.cfg.LeaseDuration / time.Second)
	id := p.cfg.Identity
	return &coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: p.cfg.Namespace, Name: MemberLeaseName(p.cfg.Group, p.cfg.Identity),
			Labels: map[string]string{LabelGroup: p.cfg.Group, LabelRole: roleMember},
		},
		Spec: coordinationv1.LeaseSpec{HolderIdentity: &id, LeaseDurationSeconds: &secs, AcquireTime: &now, RenewTime: &now},
	}
}

// join creates this replica's member Lease: a new incarnation. A Lease of
// an earlier incarnation in its place is deleted first (preconditions).
func (p *protocol) joinLocked(ctx context.Context) {
	sent := p.clock.Now()
	l, err := p.store.Create(ctx, p.memberLease())
	switch {
	case err == nil:
		p.self.lease, p.self.lastRenewSent, p.self.lastRenewTry = l, sent, sent
		p.publishFenceLocked()
		p.self.leavingWritten = false
		p.observeLocked(l, false)
		p.log.WithField("uid", l.UID).Info("joined the shard group")
	case apierrors.IsAlreadyExists(err):
		old, gerr := p.store.Get(ctx, MemberLeaseName(p.cfg.Group, p.cfg.Identity))
		if gerr != nil {
			p.log.WithError(gerr).Warn("cannot read this replica's old member lease; retrying")
			return
		}
		if derr := p.store.Delete(ctx, old.Name, string(old.UID), old.ResourceVersion); derr != nil && !apierrors.IsNotFound(derr) {
			p.log.WithError(derr).Warn("cannot delete this replica's old member lease; retrying")
		}
	default:
		p.log.WithError(err).Warn("cannot create this replica's member lease; retrying")
	}
}

// renewLocked writes the member Lease (renewTime, and the leaving mark once
// asked to leave).
func (p *protocol) renewLocked(ctx context.Context) {
	l := p.self.lease.DeepCopy()
	now := metav1.NowMicro()
	l.Spec.RenewTime = &now
	if p.self.leaving {
		if l.Annotations == nil {
			l.Annotations = map[string]string{}
		}
		l.Annotations[AnnotationState] = stateLeaving
	}
	sent := p.clock.Now()
	p.self.lastRenewTry = sent
	out, err := p.store.Update(ctx, l)
	switch {
	case err == nil:
		p.self.lease, p.self.lastRenewSent = out, sent
		p.publishFenceLocked()
		p.self.leavingWritten = p.self.leaving
		p.observeLocked(out, false)
	case apierrors.IsConflict(err) || apierrors.IsNotFound(err):
		cur, gerr := p.store.Get(ctx, l.Name)
		switch {
		case apierrors.IsNotFound(gerr):
			p.incarnationOverLocked("this replica's member lease was deleted")
		case gerr != nil:
			p.log.WithError(gerr).Warn("member lease renew conflicted and it cannot be read; retrying")
		case cur.UID != p.self.lease.UID || stateOf(cur) == stateDead:
			p.incarnationOverLocked("another replica marked this replica's member lease dead (it was not renewed for its lease duration)")
		default:
			// Our own earlier write whose answer was lost: adopt it (the
			// next renew, from it, sets the fence).
			p.self.lease = cur
		}
	default:
		p.log.WithError(err).Warn("member lease renew failed; retrying")
	}
}

// ---- the step ----------------------------------------------------------------

// step does what this replica's view calls for: join, renew, mark dead
// members, and move shards. It returns when it should run next at the
// latest (events wake it sooner).
func (p *protocol) step(ctx context.Context) time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	next := p.cfg.RetryPeriod
	if p.self.left {
		return time.Hour
	}
	if p.self.lease == nil {
		if p.self.leaving {
			p.self.left = true
			return time.Hour
		}
		if wait := p.cfg.RetryPeriod - p.clock.Since(p.self.lastJoinTry); !p.self.lastJoinTry.IsZero() && wait > 0 {
			return wait
		}
		if !p.synced || !p.healthy {
			// Join with a current view only: after a partition the
			// watch resumes first (the workers' caches share its
			// connection), and the view must show what this replica
			// held before.
			return p.cfg.RetryPeriod
		}
		p.self.lastJoinTry = p.clock.Now()
		p.joinLocked(ctx)
		if p.self.lease == nil {
			return p.cfg.RetryPeriod
		}
	}
	if p.clock.Since(p.self.lastRenewTry) >= p.cfg.RetryPeriod || (p.self.leaving && !p.self.leavingWritten) {
		p.renewLocked(ctx)
		if p.self.lease == nil {
			return 0 // rejoin at once
		}
	}
	next = min(next, p.cfg.RetryPeriod-p.clock.Since(p.self.lastRenewTry))
	if !p.fenceOpenLocked() {
		p.shutAllLocked(errors.New("this replica's member lease was not renewed within the renew deadline"))
		return max(next, 0)
	}
	next = min(next, p.cfg.RenewDeadline-p.clock.Since(p.self.lastRenewSent))
	if !p.synced {
		return max(next, 0)
	}
	if p.healthy && !p.self.leaving {
		if d := p.markDeadLocked(ctx); d < next {
			next = d
		}
	}
	if wait := p.quietUntil.Sub(p.clock.Now()); wait > 0 {
		// A move failed for another reason than a conflict: the next
		// ones wait a retry period rather than follow every watch event.
		return max(min(next, wait), 0)
	}
	if d := p.moveShardsLocked(ctx); d < next {
		next = d
	}
	p.collectLocked(ctx)
	if p.self.leaving && p.holdsNothingLocked() {
		p.leaveLocked(ctx)
	}
	return max(next, 0)
}

// markDeadLocked marks each member Lease that has not changed for its
// recorded lease duration (by this replica's clock) dead. It returns the
// time until the next countdown ends.
func (p *protocol) markDeadLocked(ctx context.Context) time.Duration {
	next := time.Duration(1<<62 - 1)
	now := p.clock.Now()
	for _, s := range p.sortedView() {
		l := s.lease
		if l.Labels[LabelRole] != roleMember || stateOf(l) == stateDead || l.UID == p.self.lease.UID {
			continue
		}
		left := time.Duration(durationOf(l))*time.Second - now.Sub(s.changedAt)
		if left > 0 {
			next = min(next, left)
			continue
		}
		marked := l.DeepCopy()
		if marked.Annotations == nil {
			marked.Annotations = map[string]string{}
		}
		marked.Annotations[AnnotationState] = stateDead
		out, err := p.store.Update(ctx, marked)
		switch {
		case err == nil:
			p.observeLocked(out, false)
			p.log.WithField("member", *l.Spec.HolderIdentity).Warnf("member not renewed for %v: marked dead; its shards move", now.Sub(s.changedAt).Round(time.Millisecond))
			p.emit(Event{Shard: -1, Kind: "marked-dead", Peer: *l.Spec.HolderIdentity})
		case apierrors.IsConflict(err) || apierrors.IsNotFound(err):
			// It renewed, left or was marked meanwhile: the watch shows it.
		default:
			p.failedLocked()
			p.log.WithError(err).Warn("cannot mark a silent member dead; retrying")
		}
	}
	return next
}

func (p *protocol) sortedView() []*seen {
	out := make([]*seen, 0, len(p.view))
	for _, s := range p.view {
		out = append(out, s)
	}
	slices.SortFunc(out, func(a, b *seen) int {
		switch {
		case a.lease.Name < b.lease.Name:
			return -1
		case a.lease.Name > b.lease.Name:
			return 1
		}
		return 0
	})
	return out
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

func (p *protocol) record(s int) *coordinationv1.Lease {
	if v := p.view[RecordName(p.cfg.Group, s)]; v != nil {
		return v.lease
	}
	return nil
}

// moveShardsLocked converges the records on the assignment, for the moves
// this replica makes: start what it holds and is assigned, hand off what
// it holds and is not, claim free shards and the shards of dead members.
func (p *protocol) moveShardsLocked(ctx context.Context) time.Duration {
	live, takers := p.membersLocked()
	me := p.me()
	current := make([]string, p.cfg.Shards)
	for s := range current {
		if h := holderOf(p.record(s)); h.identity != "" && live[h.identity] == h.uid {
			current[s] = h.identity
		}
	}
	assign := Assign(p.cfg.Shards, takers, current)
	next := time.Duration(1<<62 - 1)
	now := p.clock.Now()
	var writes []recordWrite
	add := func(w *recordWrite) {
		if w != nil {
			writes = append(writes, *w)
		}
	}
	defer func() { p.writeRecordsLocked(ctx, writes) }()
	for s := range p.shards {
		st := &p.shards[s]
		rec := p.record(s)
		if st.phase == unknown {
			add(p.resolveUnknownLocked(s, rec))
			continue
		}
		if rec == nil {
			if assign[s] == me.identity {
				add(p.createRecordLocked(s))
			}
			continue
		}
		holder := holderOf(rec)
		switch {
		case holder == me:
			st.orphanSince = time.Time{}
			if assign[s] == me.identity {
				if st.phase != running {
					p.startShardLocked(s, rec)
				}
				continue
			}
			d, w := p.handOffLocked(s, rec, incarnation{identity: assign[s], uid: live[assign[s]]})
			next = min(next, d)
			add(w)
		default:
			if st.phase == running || st.phase == draining {
				// The record names another: this replica lost s (its
				// incarnation ended, or its view lagged).
				p.stopShardLocked(s, fmt.Errorf("shard %d is held by %s now", s, holder))
			}
			if holder.identity != "" && live[holder.identity] == holder.uid {
				st.orphanSince = time.Time{}
				continue // a live holder moves it itself
			}
			if st.orphanSince.IsZero() {
				st.orphanSince = now
			}
			wait := p.cfg.FallbackDelay - now.Sub(st.orphanSince)
			if assign[s] != me.identity && (wait > 0 || p.self.leaving) {
				if wait > 0 {
					next = min(next, wait)
				}
				continue
			}
			add(p.claimLocked(s, rec, holder))
		}
	}
	return next
}

// recordWrite is one write of a shard record a step makes: do sends it
// (no protocol state touched, so that writes of several shards go out
// together), then settles its outcome under the lock, in shard order.
type recordWrite struct {
	do   func(ctx context.Context) (*coordinationv1.Lease, error)
	then func(out *coordinationv1.Lease, err error)
}

// writeRecordsLocked sends writes at once (a takeover or a leave moves
// N/M shards: one after the other they would take N/M round trips) and
// settles them in order. Each write is conditional on its own record, so
// their order does not matter.
func (p *protocol) writeRecordsLocked(ctx context.Context, writes []recordWrite) {
	outs := make([]*coordinationv1.Lease, len(writes))
	errs := make([]error, len(writes))
	if p.sequentialWrites || len(writes) == 1 {
		for i, w := range writes {
			outs[i], errs[i] = w.do(ctx)
		}
	} else {
		var wg sync.WaitGroup
		for i, w := range writes {
			wg.Go(func() { outs[i], errs[i] = w.do(ctx) })
		}
		wg.Wait()
	}
	for i, w := range writes {
		w.then(outs[i], errs[i])
	}
}

func (p *protocol) createRecordLocked(s int) *recordWrite {
	rec := newRecord(p.cfg.Namespace, p.cfg.Group, s, p.me())
	return &recordWrite{
		do: func(ctx context.Context) (*coordinationv1.Lease, error) { return p.store.Create(ctx, rec) },
		then: func(out *coordinationv1.Lease, err error) {
			switch {
			case err == nil:
				p.observeLocked(out, false)
				p.startShardLocked(s, out)
			case apierrors.IsAlreadyExists(err):
				// Another replica made it: the watch shows it.
			case isAPIStatus(err):
				p.failedLocked()
				p.log.WithError(err).WithField("shard", s).Warn("cannot create the shard record; retrying")
			default:
				// Unknown outcome: the record may exist and name this
				// replica. A create cannot be retried conditionally; the
				// watch (or the next list) shows whether it landed, and a
				// record that names this replica is started from there.
				p.failedLocked()
				p.log.WithError(err).WithField("shard", s).Warn("shard record create: outcome unknown")
			}
		},
	}
}

// startShardLocked opens s here: its keys are queued, its writes pass.
func (p *protocol) startShardLocked(s int, rec *coordinationv1.Lease) {
	st := &p.shards[s]
	now := p.clock.Now()
	unowned := time.Duration(0)
	if !st.orphanSince.IsZero() {
		unowned = now.Sub(st.orphanSince)
	}
	st.phase, st.startedAt, st.orphanSince = running, now, time.Time{}
	p.gates.open(s, transitionsOf(rec))
	if p.trace != nil {
		p.trace(s, true, p.clock.Now())
	}
	p.emit(Event{Shard: s, Kind: "started", Held: unowned})
	p.started = append(p.started, s)
}

// handOffLocked moves s from this replica to to ("" releases it): stop
// taking keys, let the ones in flight finish (DrainGrace at most), shut,
// wait out any request cut off in the network, then write the record. It
// returns when to look again, and the write once it is due.
func (p *protocol) handOffLocked(s int, rec *coordinationv1.Lease, to incarnation) (time.Duration, *recordWrite) {
	st := &p.shards[s]
	now := p.clock.Now()
	if st.phase == running {
		st.phase, st.drainFrom = draining, now
		p.gates.stopTaking(s)
	}
	if st.phase == draining {
		if p.gates.inflight(s) > 0 && now.Sub(st.drainFrom) < p.cfg.DrainGrace {
			return p.cfg.DrainGrace - now.Sub(st.drainFrom), nil // drained() wakes the step sooner
		}
		p.stopShardLocked(s, fmt.Errorf("shard %d moves to %s", s, to))
	}
	if wait := st.inNetworkUntil.Sub(now); wait > 0 {
		return wait, nil
	}
	moved := moveRecord(rec, to)
	return p.cfg.RetryPeriod, &recordWrite{
		do: func(ctx context.Context) (*coordinationv1.Lease, error) { return p.store.Update(ctx, moved) },
		then: func(out *coordinationv1.Lease, err error) {
			switch {
			case err == nil:
				p.observeLocked(out, false)
				p.log.WithFields(logrus.Fields{"shard": s, "to": to.identity}).Info("shard handed off")
			case apierrors.IsConflict(err) || apierrors.IsNotFound(err):
				// The record changed under this replica's view: the watch shows how.
			case isAPIStatus(err):
				p.failedLocked()
				p.log.WithError(err).WithField("shard", s).Warn("cannot hand the shard off; retrying")
			default:
				p.failedLocked()
				st.phase, st.unknownAt = unknown, transitionsOf(rec)
			}
		},
	}
}

// claimLocked takes s, whose record names nobody live, for this replica.
func (p *protocol) claimLocked(s int, rec *coordinationv1.Lease, from incarnation) *recordWrite {
	st := &p.shards[s]
	if wait := st.inNetworkUntil.Sub(p.clock.Now()); wait > 0 && from.identity == p.cfg.Identity {
		return nil // a request of this replica's earlier hold may still be in the network
	}
	claimed := moveRecord(rec, p.me())
	return &recordWrite{
		do: func(ctx context.Context) (*coordinationv1.Lease, error) { return p.store.Update(ctx, claimed) },
		then: func(out *coordinationv1.Lease, err error) {
			switch {
			case err == nil:
				p.observeLocked(out, false)
				p.log.WithFields(logrus.Fields{"shard": s, "from": from.String()}).Info("shard taken")
				p.startShardLocked(s, out)
			case apierrors.IsConflict(err) || apierrors.IsNotFound(err):
			case isAPIStatus(err):
				p.failedLocked()
				p.log.WithError(err).WithField("shard", s).Warn("cannot take the shard; retrying")
			default:
				p.failedLocked()
				st.phase, st.unknownAt = unknown, transitionsOf(rec)
			}
		},
	}
}

// resolveUnknownLocked settles a record write whose outcome is unknown
// with a write of the record as this replica last saw it (move count
// raised): it succeeds only if the lost write never landed, and a late
// delivery of that write then conflicts.
func (p *protocol) resolveUnknownLocked(s int, rec *coordinationv1.Lease) *recordWrite {
	st := &p.shards[s]
	if rec == nil {
		st.phase = idle
		return nil
	}
	same := moveRecord(rec, holderOf(rec))
	return &recordWrite{
		do: func(ctx context.Context) (*coordinationv1.Lease, error) { return p.store.Update(ctx, same) },
		then: func(out *coordinationv1.Lease, err error) {
			switch {
			case err == nil:
				p.observeLocked(out, false)
				st.phase = idle // the record is as this replica saw it: decide again
			case apierrors.IsConflict(err) || apierrors.IsNotFound(err):
				// The lost write (or another) landed: wait for the watch.
			default:
				// Still unknown (or refused): try again after a retry period.
				p.failedLocked()
			}
		},
	}
}

// failedLocked holds moves back for a retry period.
func (p *protocol) failedLocked() { p.quietUntil = p.clock.Now().Add(p.cfg.RetryPeriod) }

// collectLocked deletes member Leases marked dead once no record names
// them.
func (p *protocol) collectLocked(ctx context.Context) {
	named := map[string]bool{}
	for s := range p.shards {
		named[holderOf(p.record(s)).uid] = true
	}
	for _, v := range p.sortedView() {
		l := v.lease
		if l.Labels[LabelRole] != roleMember || stateOf(l) != stateDead || named[string(l.UID)] {
			continue
		}
		if p.gcTried[l.Name] == l.ResourceVersion {
			continue
		}
		p.gcTried[l.Name] = l.ResourceVersion
		if err := p.store.Delete(ctx, l.Name, string(l.UID), l.ResourceVersion); err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
			p.log.WithError(err).WithField("lease", l.Name).Debug("cannot delete a dead member lease")
		}
	}
}

func (p *protocol) holdsNothingLocked() bool {
	me := p.me()
	for s := range p.shards {
		if p.shards[s].phase != idle || holderOf(p.record(s)) == me {
			return false
		}
	}
	return true
}

// leaveLocked deletes this replica's member Lease once it holds nothing.
func (p *protocol) leaveLocked(ctx context.Context) {
	l := p.self.lease
	err := p.store.Delete(ctx, l.Name, string(l.UID), l.ResourceVersion)
	if err != nil && !apierrors.IsNotFound(err) {
		p.log.WithError(err).Warn("cannot delete this replica's member lease; it will be marked dead and collected")
	}
	p.self.left = true
	p.self.lease = nil
	p.publishFenceLocked()
	p.log.Info("left the shard group")
}

// takeStarted returns the shards started since its last call.
func (p *protocol) takeStarted() []int {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := p.started
	p.started = nil
	return out
}

// leave asks this replica to hand every shard on and leave the group.
func (p *protocol) leave() {
	p.mu.Lock()
	p.self.leaving = true
	p.mu.Unlock()
}

func (p *protocol) hasLeft() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.self.left
}

// isAPIStatus reports whether err is an answer of the apiserver (its
// outcome known), not a failure to get one.
func isAPIStatus(err error) bool {
	var s apierrors.APIStatus
	return errors.As(err, &s) && s.Status().Code != 0 && !apierrors.IsTimeout(err) && !apierrors.IsServerTimeout(err)
}
