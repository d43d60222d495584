package leader

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	flags "github.com/rein-k8s/rein/internal/electionflags"
	"github.com/rein-k8s/rein/internal/leasewatch"
	"github.com/rein-k8s/rein/internal/renewal"
	"github.com/rein-k8s/rein/pkg/fence"

	"github.com/sirupsen/logrus"
	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	coordinationv1client "k8s.io/client-go/kubernetes/typed/coordination/v1"
	"k8s.io/utils/clock"
	"k8s.io/utils/ptr"
)

// Elector campaigns for one Lease on behalf of one replica. Its methods are
// safe for concurrent use; at most one Campaign or term is live at a time.
type Elector struct {
	leases                         coordinationv1client.LeaseInterface
	namespace, name, key, identity string
	leaseDuration, renewDeadline   time.Duration
	retryPeriod                    time.Duration
	clock                          clock.Clock
	log                            *logrus.Entry
	metrics                        *metrics
	fence                          *renewal.Renewal
	// written remembers the renewTime of this elector's recent writes, so
	// that it can tell its own record from one written by another process
	// with the same identity.
	written writeLog

	mu      sync.Mutex
	busy    bool     // a Campaign or a term is live
	term    *Term    // the live term, if any
	session *session // the live campaign's or term's watch, if any
	leader  string
}

// New checks cfg and returns an Elector. It makes no request.
func New(cfg Config) (*Elector, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Client == nil {
		return nil, errors.New("leader: Config.Client is nil: pass clientset.CoordinationV1()")
	}
	cfg = cfg.withDefaults()
	clk := cfg.Clock
	if clk == nil {
		clk = clock.RealClock{}
	}
	logger := cfg.Logger
	if logger == nil {
		logger = logrus.NewEntry(logrus.StandardLogger())
	}
	key := cfg.Namespace + "/" + cfg.Name
	m, err := newMetrics(cfg.Registerer, cfg.Namespace, cfg.Name)
	if err != nil {
		return nil, err
	}
	e := &Elector{
		leases:        cfg.Client.Leases(cfg.Namespace),
		namespace:     cfg.Namespace,
		name:          cfg.Name,
		key:           key,
		identity:      cfg.Identity,
		leaseDuration: cfg.LeaseDuration,
		renewDeadline: cfg.RenewDeadline,
		retryPeriod:   cfg.RetryPeriod,
		clock:         clk,
		log:           logger.WithFields(logrus.Fields{"lease": key, "identity": cfg.Identity}),
		metrics:       m,
		fence:         renewal.New(key, cfg.RenewDeadline, clk, "no leadership term is live"),
	}
	if cfg.RetryPeriod < time.Second && cfg.RenewDeadline <= time.Second+cfg.RetryPeriod {
		// See Term.renewed: the fence counts a renew only when the record
		// changed to the second, so it may go 1s + RetryPeriod unextended.
		e.log.Warnf("%s %v is under a second and %s %v is not above 1s + %s: the fence is extended about once a second (client-go compares lease records to the second), so one slow renew may cost the lease",
			flags.RetryPeriod, cfg.RetryPeriod, flags.RenewDeadline, cfg.RenewDeadline, flags.RetryPeriod)
	}
	return e, nil
}

// Identity is the identity this elector writes into the lease.
func (e *Elector) Identity() string { return e.identity }

// Fence is this elector's fence, a fence.Hold that lives as long as the
// elector: open while a term is live and was renewed less than
// RenewDeadline ago, closed otherwise, with the current term's token.
// pkg/start makes it the fallback hold of the group's clients, for writes
// whose context carries no term (events, hooks).
func (e *Elector) Fence() fence.Hold { return e.fence }

// Leader is the holder this elector last saw in the lease: its own identity
// during a term, "" when the lease is released or was never seen.
func (e *Elector) Leader() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.leader
}

// Check is a health check (for /healthz): it fails when this replica
// believes it leads but has not renewed the lease for longer than
// LeaseDuration, which only happens when the term's own machinery is stuck
// (a live term ends at RenewDeadline). A standby is always healthy.
func (e *Elector) Check(_ *http.Request) error {
	holding, last := e.fence.State()
	if !holding {
		return nil
	}
	if since := e.clock.Since(last); since > e.leaseDuration {
		return fmt.Errorf("leader: this replica leads lease %s but has not renewed it for %v (lease duration %v): its renew loop is stuck",
			e.key, since.Round(time.Millisecond), e.leaseDuration)
	}
	return nil
}

// Visibility is a readiness check (for /readyz): it fails when this
// replica has been unable to see its Lease for longer than LeaseDuration:
// every list and watch of the Lease, or every attempt to take it, failed
// for that long. Such a replica cannot take over from a dead leader, so it
// should not count as a ready standby; it is still healthy (see Check):
// restarting it would not bring the apiserver back, and would throw away
// the warm caches that make its takeover fast once it returns. nil
// between campaigns.
func (e *Elector) Visibility() error {
	e.mu.Lock()
	s, t := e.session, e.term
	e.mu.Unlock()
	if s == nil || (t != nil && t.live()) {
		return nil // a leader's renews are its sight: its fence and Check cover it
	}
	for _, l := range []*failureLog{s.failures, s.writes} {
		if d, err := l.failingFor(); err != nil && d > e.leaseDuration {
			return fmt.Errorf("leader: cannot see lease %s for %v (lease duration %v): %w", e.key, d.Round(time.Millisecond), e.leaseDuration, err)
		}
	}
	return nil
}

// Campaign blocks until this replica holds the lease, and returns the term;
// or until ctx ends, and returns an error that wraps ctx.Err() and the last
// API error (a *ForbiddenError when RBAC is missing). API errors do not end
// the campaign: it retries with backoff and logs every few seconds, since
// an unreachable apiserver or a missing RoleBinding may be fixed without a
// restart.
//
// ctx bounds the term as well: when it ends, renewing stops and the term
// ends. To drain work before stepping down, keep ctx alive, stop the work,
// then call Term.Release.
//
// Campaign may be called again once the previous term is Done.
func (e *Elector) Campaign(ctx context.Context) (*Term, error) {
	e.mu.Lock()
	if e.busy {
		e.mu.Unlock()
		return nil, ErrCampaignInProgress
	}
	e.busy = true
	e.mu.Unlock()

	s := e.startSession(ctx)
	t, err := e.campaign(ctx, s)
	if err != nil {
		s.stop()
		e.mu.Lock()
		e.busy = false
		e.mu.Unlock()
		return nil, err
	}
	return t, nil
}

// campaign is the standby's loop: it acts on what the session's watch shows
// and sends a request only to take the lease.
func (e *Elector) campaign(ctx context.Context, s *session) (*Term, error) {
	began := e.clock.Now()
	e.log.Info("campaigning for the lease")
	writes := s.writes
	backoff := e.newBackoff()
	for {
		if ctx.Err() != nil {
			return nil, e.campaignEnded(ctx, s, writes)
		}
		ob := s.snapshot()
		wait := time.Duration(-1) // until the watch shows a change
		var (
			term  *Term
			err   error
			tried bool
		)
		switch {
		case !ob.known:
			// The first list has not answered yet.
		case ob.lease == nil:
			tried = true
			term, err = e.create(ctx, s)
		default:
			free, why, remaining := e.isFree(s, ob)
			if !free {
				// The lease is seen held: this replica has nothing to
				// write, so takes that failed while it was cut off no
				// longer say it cannot see the lease (Visibility).
				writes.recovered("the lease is seen held again; no take needed")
				wait = remaining
				break
			}
			tried = true
			term, err = e.acquire(ctx, s, ob.lease, why)
		}
		if tried {
			switch {
			case err == nil:
				writes.recovered("took the lease after failed attempts")
				e.log.WithField("campaignedFor", e.clock.Since(began).Round(time.Millisecond).String()).Debug("campaign won")
				return term, nil
			case ctx.Err() != nil:
				return nil, e.campaignEnded(ctx, s, writes)
			case apierrors.IsConflict(err), apierrors.IsAlreadyExists(err):
				// Another replica wrote first. The watch will show what
				// it wrote; asking the apiserver now would be a request
				// the watch makes needless. The apiserver answered.
				writes.recovered("the apiserver answers takes again")
				e.log.WithError(err).Debug("another replica wrote the lease first")
			default:
				writes.failed("cannot take lease "+e.key, err)
				wait = backoff.Step()
			}
		}
		e.waitForChange(ctx, s, wait)
	}
}

// campaignEnded is Campaign's error when ctx ends first.
func (e *Elector) campaignEnded(ctx context.Context, s *session, writes *failureLog) error {
	last := s.failures.lastErr()
	if last == nil {
		last = writes.lastErr()
	}
	if last != nil {
		return fmt.Errorf("leader: campaign for lease %s ended before this replica took it: %w; last error: %w", e.key, ctx.Err(), last)
	}
	return fmt.Errorf("leader: campaign for lease %s ended before this replica took it: %w", e.key, ctx.Err())
}

// waitForChange waits until the watch shows a change, d passes (d < 0:
// never), or ctx ends.
func (e *Elector) waitForChange(ctx context.Context, s *session, d time.Duration) {
	var timeout <-chan time.Time
	if d >= 0 {
		timer := e.clock.NewTimer(d)
		defer timer.Stop()
		timeout = timer.C()
	}
	select {
	case <-ctx.Done():
	case <-s.changed:
	case <-timeout:
	}
}

// isFree applies client-go's rule to what this standby observed: a lease
// is free when it is released (holder ""), when it holds this elector's own
// last record, or when its record has not changed for leaseDurationSeconds
// by THIS replica's clock since this replica saw it change. Timestamps in
// the record are never compared with the local clock. When the lease is not
// free, remaining is how long until it will be unless it changes.
func (e *Elector) isFree(s *session, ob observation) (free bool, why string, remaining time.Duration) {
	holder := holderOf(ob.lease)
	switch {
	case holder == "":
		return true, "the lease is released", 0
	case holder == e.identity && e.written.has(ob.lease.Spec.RenewTime):
		return true, "the lease holds this replica's own last record", 0
	case holder == e.identity:
		s.warnIdentityClash()
	}
	d := durationOf(ob.lease, e.leaseDuration)
	unchanged := e.clock.Since(ob.changedAt)
	if unchanged >= d {
		return true, fmt.Sprintf("the lease held by %q did not change for %v (lease duration %v)", holder, unchanged.Round(time.Millisecond), d), 0
	}
	return false, "", d - unchanged
}

// create makes the lease with this replica as holder. Create is atomic:
// of candidates racing to create, one wins and the others see AlreadyExists.
func (e *Elector) create(ctx context.Context, s *session) (*Term, error) {
	sent := e.clock.Now()
	now := microTime(sent)
	e.written.note(now)
	lease := &coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{Name: e.name, Namespace: e.namespace},
		Spec: coordinationv1.LeaseSpec{
			HolderIdentity:       ptr.To(e.identity),
			LeaseDurationSeconds: ptr.To(leaseSeconds(e.leaseDuration)),
			AcquireTime:          now,
			RenewTime:            now,
			LeaseTransitions:     ptr.To[int32](0),
		},
	}
	got, err := e.leases.Create(ctx, lease, metav1.CreateOptions{})
	if err != nil {
		return nil, e.explain("create", err)
	}
	return e.startTerm(ctx, s, got, sent, "created the lease", ""), nil
}

// acquire takes the lease over from the record cur, with cur's
// resourceVersion as precondition: if the lease changed since this replica
// saw it (a renew it has not seen yet), the update fails with a conflict
// instead of deposing a live leader.
func (e *Elector) acquire(ctx context.Context, s *session, cur *coordinationv1.Lease, why string) (*Term, error) {
	sent := e.clock.Now()
	now := microTime(sent)
	previous := holderOf(cur)
	// Every acquisition is a new term, and the term's fencing token is
	// this count: it grows even when this replica takes back a lease that
	// still names it (client-go counts changes of holder only).
	var transitions int32
	if cur.Spec.LeaseTransitions != nil {
		transitions = *cur.Spec.LeaseTransitions
	}
	transitions++
	next := cur.DeepCopy()
	next.Spec = coordinationv1.LeaseSpec{
		HolderIdentity:       ptr.To(e.identity),
		LeaseDurationSeconds: ptr.To(leaseSeconds(e.leaseDuration)),
		AcquireTime:          now,
		RenewTime:            now,
		LeaseTransitions:     &transitions,
	}
	e.written.note(now)
	got, err := e.leases.Update(ctx, next, metav1.UpdateOptions{})
	if err != nil {
		return nil, e.explain("update", err)
	}
	return e.startTerm(ctx, s, got, sent, why, previous), nil
}

// startTerm opens the fence and starts the term's goroutines. The term
// takes the session over: its watch keeps running, so that a change by
// another replica triggers a renew at once and a deposed term ends without
// waiting for its next renew.
func (e *Elector) startTerm(ctx context.Context, s *session, got *coordinationv1.Lease, sent time.Time, why, previous string) *Term {
	t := newTerm(ctx, e, s, got, sent)
	e.fence.Open(sent, t.token)
	e.mu.Lock()
	e.term = t
	e.leader = e.identity
	e.mu.Unlock()
	e.metrics.isLeader.Set(1)
	e.metrics.transitions.WithLabelValues(eventAcquired).Inc()
	entry := e.log.WithField("reason", why)
	if previous != "" {
		entry = entry.WithField("previousHolder", previous)
	}
	entry.Info("acquired the lease: leading")
	go t.run()
	return t
}

// observed is called by the session's watch when the record changed.
func (e *Elector) observed(l *coordinationv1.Lease) {
	holder := holderOf(l)
	e.mu.Lock()
	t := e.term
	leading := t != nil && t.live()
	changed := !leading && holder != e.leader
	if changed {
		e.leader = holder
	}
	e.mu.Unlock()
	switch {
	case leading && holder != e.identity:
		// Maybe deposed, maybe an old event still in flight: a renew
		// tells which, now rather than at the next tick.
		t.renewNow()
	case holder == e.identity:
		// This replica's own write; startTerm logs it.
	case changed && l == nil:
		e.log.Info("the lease does not exist")
	case changed && holder == "":
		e.log.Info("the lease is released")
	case changed:
		e.log.WithField("holder", holder).Info("observed a new leader")
	}
}

func (e *Elector) setLeader(holder string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.leader = holder
}

// termFinished is called when a term's goroutines have stopped.
func (e *Elector) termFinished(t *Term) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.term == t {
		e.term = nil
	}
	e.busy = false
}

// newBackoff is the backoff of retries after API errors: from 100ms up to
// RetryPeriod, so that a failing apiserver sees no more requests than from
// a client-go elector, and a recovered one is noticed within RetryPeriod.
func (e *Elector) newBackoff() *wait.Backoff { return leasewatch.NewBackoff(e.retryPeriod) }

// sleep waits d on the elector's clock; false when ctx ended first.
func (e *Elector) sleep(ctx context.Context, d time.Duration) bool {
	return leasewatch.Sleep(ctx, e.clock, d)
}

// writeLog remembers the renewTime values of recent writes. A renewTime is
// written with microsecond precision from this process's clock, so in
// practice no other process writes the same one.
type writeLog struct {
	mu    sync.Mutex
	times []metav1.MicroTime
}

const writeLogSize = 16

func (w *writeLog) note(t *metav1.MicroTime) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.times) == writeLogSize {
		w.times = append(w.times[:0], w.times[1:]...)
	}
	w.times = append(w.times, *t)
}

func (w *writeLog) has(t *metav1.MicroTime) bool {
	if t == nil {
		return false
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for i := range w.times {
		if w.times[i].Equal(t) {
			return true
		}
	}
	return false
}
