package shard

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/sirupsen/logrus"
	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/utils/clock"

	"github.com/rein-k8s/rein/internal/renewal"
)

// store is what the protocol needs of the apiserver: the group's Leases
// in one namespace. Update and Delete are conditional (the object's
// resourceVersion; Delete also its UID). An error that is not an API
// status (a timeout, a cut connection) leaves the outcome unknown, and the
// protocol treats it so.
type store interface {
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
	store store
	clock clock.Clock
	log   *logrus.Entry
	gates *gates
	// events receives what the runner reports (moves, for metrics); may
	// be nil.
	events func(event)
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
	fence   *renewal.Renewal
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
	// started collects the shards started since takeStarted last ran;
	// stopped, those stopped since takeStopped last ran.
	started, stopped []int
	// next are the shards this replica is next in line for, as last
	// reported (takeNextInLine), computed for the view nextKey names.
	next    []int
	nextKey string
	// sequentialWrites sends a step's record writes one after the other
	// (the model test's store is not safe for concurrent use).
	sequentialWrites bool
}

// event is a move this replica made or saw, for metrics and logs.
type event struct {
	Shard int
	// Kind is "started" (the shard runs here), "stopped" (handed off,
	// released or lost), "marked-dead" (this replica marked a member dead).
	Kind string
	// Held is how long the shard ran here (stopped), or how long it was
	// unowned before it started here, as far as this replica saw (started).
	Held time.Duration
	Peer string
}

func newProtocol(cfg Config, st store) *protocol {
	p := &protocol{cfg: cfg, store: st, clock: cfg.Clock, log: cfg.Logger,
		view: map[string]*seen{}, shards: make([]shardRun, cfg.Shards), gcTried: map[string]string{}}
	p.gates = newGates(cfg.Namespace, cfg.Group, cfg.Shards, cfg.Clock)
	p.fence = renewal.New(cfg.Namespace+"/"+MemberLeaseName(cfg.Group, cfg.Identity), cfg.RenewDeadline, cfg.Clock,
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

func (p *protocol) emit(e event) {
	if p.events != nil {
		p.events(e)
	}
}

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
		if wait, joined := p.joinWhenReadyLocked(ctx); !joined {
			return wait
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

// failedLocked holds moves back for a retry period.
func (p *protocol) failedLocked() { p.quietUntil = p.clock.Now().Add(p.cfg.RetryPeriod) }

// isAPIStatus reports whether err is an answer of the apiserver (its
// outcome known), not a failure to get one.
func isAPIStatus(err error) bool {
	var s apierrors.APIStatus
	return errors.As(err, &s) && s.Status().Code != 0 && !apierrors.IsTimeout(err) && !apierrors.IsServerTimeout(err)
}
