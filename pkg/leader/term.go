package leader

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/rein-k8s/rein/pkg/fence"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// errReleased is the cause (context.Cause) of a released term's context.
var errReleased = errors.New("leader: the term was released")

// Term is one leadership term: from the write that took the lease to the
// moment leadership is lost, the term is released, or the Campaign context
// ends.
type Term struct {
	e        *Elector
	session  *session
	ctx      context.Context
	cancel   context.CancelCauseFunc
	done     chan struct{}
	nudge    chan struct{}
	failures *failureLog
	acquired time.Time
	token    fence.Token
	// written remembers this term's own writes, so that after a conflict
	// the term can tell "a renew of mine landed although its response was
	// lost" from "someone else wrote". Only this term's writes count: a
	// later term of the same elector is someone else to this one.
	written writeLog

	releaseMu sync.Mutex

	mu       sync.Mutex
	ended    bool
	err      error
	foreign  bool                  // the lease is someone else's (or gone): never release it
	released bool                  // Release succeeded
	cached   *coordinationv1.Lease // this term's last successful write
	lastKey  string                // clientGoKey of the write the fence counts from
}

func newTerm(ctx context.Context, e *Elector, s *session, got *coordinationv1.Lease, sent time.Time) *Term {
	t := &Term{
		e:        e,
		session:  s,
		done:     make(chan struct{}),
		nudge:    make(chan struct{}, 1),
		failures: e.newFailureLog(),
		acquired: sent,
		token:    fence.Token{Namespace: got.Namespace, Lease: got.Name, Term: int64(ptrValue(got.Spec.LeaseTransitions))},
		cached:   got,
		lastKey:  clientGoKey(&got.Spec),
	}
	t.written.note(got.Spec.RenewTime)
	t.ctx, t.cancel = context.WithCancelCause(ctx)
	return t
}

func ptrValue(p *int32) int32 {
	if p == nil {
		return 0
	}
	return *p
}

// Context is cancelled the moment the term ends: leadership is lost, the
// fence closes, Release is called, or the Campaign context ends.
// context.Cause tells which. Leader-only work runs under this context.
func (t *Term) Context() context.Context { return t.ctx }

// Token is the term's fencing token: the Lease's spec.leaseTransitions as
// the term's acquiring write set it (see "Fencing tokens" in the package
// doc).
func (t *Term) Token() fence.Token { return t.token }

// Deadline makes a Term a fence.Hold: nil while the term is live and the
// elector's fence is open, with the instant it closes unless a renew moves
// it. A term that ended refuses writes even when a later term of the same
// elector is live: a late handler of the old term is someone else.
func (t *Term) Deadline() (time.Time, error) {
	if !t.live() {
		t.mu.Lock()
		err := t.err
		t.mu.Unlock()
		reason := "the leadership term ended"
		if err != nil {
			reason += ": " + err.Error()
		}
		return time.Time{}, &fence.Error{Lease: t.e.key, SinceRenew: -1, Reason: reason}
	}
	return t.e.fence.Deadline()
}

// Done is closed when the term has ended and its goroutines have stopped.
func (t *Term) Done() <-chan struct{} { return t.done }

// Err says why the term ended: nil while it runs and when Release ended
// it; an error matching ErrLeadershipLost when leadership was lost
// (deposed, lease deleted, renew deadline passed); the Campaign context's
// error when that ended it.
func (t *Term) Err() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.err
}

func (t *Term) live() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return !t.ended
}

// renewNow asks the renew loop for a renew at once.
func (t *Term) renewNow() {
	select {
	case t.nudge <- struct{}{}:
	default:
	}
}

func (t *Term) run() {
	var wg sync.WaitGroup
	wg.Go(t.watchdog)
	t.renewLoop()
	wg.Wait()
	t.session.stop()
	t.e.termFinished(t)
	close(t.done)
}

// end ends the term once: it closes the fence first, so that nothing
// reacting to the cancelled context can still write, then cancels the
// context.
func (t *Term) end(event string, err error) {
	t.mu.Lock()
	if t.ended {
		t.mu.Unlock()
		return
	}
	t.ended = true
	if event != eventReleased {
		t.err = err
	}
	t.mu.Unlock()

	e := t.e
	cause := err
	var reason string
	switch event {
	case eventReleased:
		cause, reason = errReleased, "this replica released the lease"
	case eventStopped:
		reason = "the campaign context ended"
	default:
		reason = "leadership was lost"
	}
	e.fence.Close(reason)
	t.cancel(cause)
	e.metrics.isLeader.Set(0)
	e.metrics.transitions.WithLabelValues(event).Inc()
	entry := e.log.WithField("ledFor", e.clock.Since(t.acquired).Round(time.Millisecond).String())
	switch event {
	case eventLost:
		entry.WithError(err).Error("leadership lost: stopped leading")
	case eventStopped:
		entry.WithError(err).Info("campaign context ended: stopped leading")
	case eventReleased:
		entry.Info("releasing the lease: stopped leading")
	}
}

// lose ends the term because the lease is someone else's now (or gone):
// Release must not touch it.
func (t *Term) lose(holder string, err error) {
	t.mu.Lock()
	t.foreign = true
	t.mu.Unlock()
	t.end(eventLost, err)
	t.e.setLeader(holder)
}

func (t *Term) loseDeadline() {
	err := fmt.Errorf("%w: lease %s was not renewed within the renew deadline (%v)", ErrLeadershipLost, t.e.key, t.e.renewDeadline)
	if last := t.failures.lastErr(); last != nil {
		err = fmt.Errorf("%w; last renew error: %w", err, last)
	}
	t.end(eventLost, err)
}

// watchdog ends the term the moment the fence's deadline passes. Its timer
// is set for lastRenew + RenewDeadline; a renew in the meantime moves the
// deadline, and the timer is set again for the new one.
func (t *Term) watchdog() {
	for {
		remaining, holding := t.e.fence.Remaining()
		if !holding {
			return
		}
		if remaining <= 0 {
			t.loseDeadline()
			return
		}
		timer := t.e.clock.NewTimer(remaining)
		select {
		case <-t.ctx.Done():
			timer.Stop()
			return
		case <-timer.C():
		}
	}
}

// renewLoop renews every RetryPeriod, or at once when the watch shows a
// change by someone else, until the term ends.
func (t *Term) renewLoop() {
	for {
		timer := t.e.clock.NewTimer(t.e.retryPeriod)
		select {
		case <-t.ctx.Done():
			timer.Stop()
			// A no-op when the term ended itself; otherwise the Campaign
			// context ended.
			t.end(eventStopped, context.Cause(t.ctx))
			return
		case <-timer.C():
		case <-t.nudge:
			timer.Stop()
		}
		// renew asks for another go only after it adopted a record this
		// term wrote; bound that in case something keeps touching the lease.
		for range 3 {
			if !t.renew() {
				break
			}
		}
	}
}

// renew sends one optimistic update from the term's cached copy (its own
// last write, with that write's resourceVersion as precondition). After a
// conflict it reads the lease to tell a lost response from a new holder. It
// returns true when it should be called again at once.
func (t *Term) renew() (again bool) {
	e := t.e
	sent := e.clock.Now()
	if remaining, holding := e.fence.Remaining(); !holding || remaining <= 0 {
		return false // the watchdog ends the term
	}
	t.mu.Lock()
	next := t.cached.DeepCopy()
	t.mu.Unlock()
	now := microTime(sent)
	next.Spec.HolderIdentity = ptr.To(e.identity)
	next.Spec.LeaseDurationSeconds = ptr.To(leaseSeconds(e.leaseDuration))
	next.Spec.RenewTime = now
	t.written.note(now)
	e.written.note(now)

	got, err := e.leases.Update(t.ctx, next, metav1.UpdateOptions{})
	e.metrics.renewDuration.Observe(e.clock.Since(sent).Seconds())
	if err == nil {
		t.renewed(got, sent)
		t.failures.recovered("renewed the lease again")
		return false
	}
	if t.ctx.Err() != nil {
		return false
	}
	e.metrics.renewFailures.Inc()
	if !apierrors.IsConflict(err) && !apierrors.IsNotFound(err) {
		t.failures.failed("cannot renew lease "+e.key, e.explain("update", err))
		return false
	}

	cur, err := e.leases.Get(t.ctx, e.name, metav1.GetOptions{})
	switch {
	case t.ctx.Err() != nil:
		return false
	case apierrors.IsNotFound(err):
		t.lose("", fmt.Errorf("%w: lease %s was deleted", ErrLeadershipLost, e.key))
		return false
	case err != nil:
		t.failures.failed("cannot read lease "+e.key+" after a conflict", e.explain("get", err))
		return false
	case holderOf(cur) != e.identity:
		t.lose(holderOf(cur), fmt.Errorf("%w: lease %s is held by %q now", ErrLeadershipLost, e.key, holderOf(cur)))
		return false
	case !t.written.has(cur.Spec.RenewTime):
		t.lose(e.identity, fmt.Errorf("%w: lease %s names this replica's identity %q but holds a record this replica did not write: another process uses the same identity (use NewIdentity)",
			ErrLeadershipLost, e.key, e.identity))
		return false
	}
	// The lease holds a record this term wrote: a renew whose response was
	// lost did land (or someone touched only metadata). Renew from it.
	t.mu.Lock()
	t.cached = cur
	t.mu.Unlock()
	return true
}

// renewed records a successful write sent at sent. The fence's deadline
// moves only when the write changed the record as a client-go standby sees
// it (times to the second, see clientGoKey): such a standby starts its
// countdown at the first write of a new record and ignores later writes
// that look the same to it, so the fence must count from that first write
// too. With RetryPeriod ≥ 1s every renew counts; with a shorter one the
// fence is extended about once a second.
func (t *Term) renewed(got *coordinationv1.Lease, sent time.Time) {
	t.mu.Lock()
	t.cached = got
	key := clientGoKey(&got.Spec)
	counts := key != t.lastKey
	t.lastKey = key
	t.mu.Unlock()
	if counts {
		t.e.fence.Renewed(sent)
	}
}

// Release ends the term and hands the lease over at once: it stops
// renewing, closes the fence, and writes holderIdentity "" with
// leaseDurationSeconds 1 (as client-go does), so that any standby — rein or
// client-go — takes the lease without waiting.
//
// The write carries the resourceVersion of this term's last successful
// write as precondition. If anyone wrote the lease since, the write fails
// with a conflict; Release then reads the lease and retries only if it
// still holds a record this term wrote (a renew whose response was lost).
// Otherwise the lease is someone else's and Release returns an error
// matching ErrLeadershipLost without writing: a deposed leader never blanks
// the new holder's lease. (client-go's release reads the lease and writes
// with the fresh resourceVersion, which can blank a new holder's lease.)
//
// Stop leader-only work before calling Release: once the lease is free, a
// standby may start at once. Release may be called after the term has
// ended (lost at the renew deadline, or its context cancelled): it then
// releases the lease if no one has written it since. Calling it again after
// it succeeded does nothing.
func (t *Term) Release(ctx context.Context) error {
	t.releaseMu.Lock()
	defer t.releaseMu.Unlock()
	e := t.e
	began := e.clock.Now()
	t.end(eventReleased, nil)
	select {
	case <-t.done:
	case <-ctx.Done():
		return fmt.Errorf("leader: release lease %s: %w", e.key, ctx.Err())
	}

	t.mu.Lock()
	foreign, released, termErr, cur := t.foreign, t.released, t.err, t.cached
	t.mu.Unlock()
	switch {
	case released:
		return nil
	case foreign:
		return fmt.Errorf("leader: lease %s not released: %w", e.key, termErr)
	}

	for conflicts := 0; ; conflicts++ {
		now := microTime(e.clock.Now())
		next := cur.DeepCopy()
		next.Spec = coordinationv1.LeaseSpec{
			HolderIdentity:       ptr.To(""),
			LeaseDurationSeconds: ptr.To[int32](1),
			AcquireTime:          now,
			RenewTime:            now,
			LeaseTransitions:     cur.Spec.LeaseTransitions,
		}
		_, err := e.leases.Update(ctx, next, metav1.UpdateOptions{})
		switch {
		case err == nil:
			t.markReleased()
			e.log.WithField("took", e.clock.Since(began).Round(time.Millisecond).String()).Info("released the lease")
			return nil
		case apierrors.IsNotFound(err):
			t.markReleased()
			e.log.Info("the lease was deleted: nothing to release")
			return nil
		case !apierrors.IsConflict(err):
			return fmt.Errorf("leader: %w", e.explain("release (update)", err))
		}

		got, err := e.leases.Get(ctx, e.name, metav1.GetOptions{})
		switch holder := holderOf(got); {
		case apierrors.IsNotFound(err):
			t.markReleased()
			return nil
		case err != nil:
			return fmt.Errorf("leader: %w", e.explain("release (get after a conflict)", err))
		case holder == "":
			// Released already: by an earlier attempt whose response was
			// lost, or by a later holder.
			t.markReleased()
			return nil
		case holder != e.identity || !t.written.has(got.Spec.RenewTime):
			e.setLeader(holder)
			return fmt.Errorf("%w: lease %s not released: it is held by %q now, not by this term", ErrLeadershipLost, e.key, holder)
		case conflicts >= 2:
			return fmt.Errorf("leader: release lease %s: gave up after %d conflicts", e.key, conflicts+1)
		}
		cur = got
	}
}

// markReleased makes later Release calls no-ops.
func (t *Term) markReleased() {
	t.mu.Lock()
	t.released = true
	t.mu.Unlock()
	t.e.setLeader("")
}
