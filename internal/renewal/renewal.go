package renewal

import (
	"sync"
	"time"

	"k8s.io/utils/clock"

	"github.com/rein-k8s/rein/pkg/fence"
)

// Renewal is the fence of a Lease this replica holds by renewing it, and a
// fence.Hold: open from the send of the write that took the Lease (Open) until
// RenewDeadline after the send of the last counted renew (Renewed), by the
// monotonic clock; Close shuts it until the next Open.
//
// Why from the send and not from the response: the apiserver may have
// stored the write at any instant between the two, and another replica
// starts its LeaseDuration countdown when it sees the stored record, which
// is no earlier than the send. Counting from the response would let a slow
// response (a GC pause, a congested link) stretch this replica's belief
// past what the others grant it; counting from the send keeps
// RenewDeadline < LeaseDuration a real margin however long the response
// took.
//
// Deadline reads the clock at every call instead of trusting a timer to
// have closed the fence: after a process stall the timer's goroutine may
// not have run yet, but the first write after the stall asks the clock and
// is refused. A Renewal is safe for concurrent use; one serves every hold
// of its Lease in turn.
type Renewal struct {
	lease         string
	renewDeadline time.Duration
	clock         clock.PassiveClock

	mu        sync.Mutex
	open      bool
	reason    string // why closed, when !open
	token     fence.Token
	lastRenew time.Time // send time of the last counted write; monotonic
}

// New returns the closed fence of lease ("namespace/name"), with reason as
// the refusal's reason until the first Open.
func New(lease string, renewDeadline time.Duration, clk clock.PassiveClock, reason string) *Renewal {
	return &Renewal{lease: lease, renewDeadline: renewDeadline, clock: clk, reason: reason}
}

// Open starts a hold with token tok whose taking write was sent at sent.
func (r *Renewal) Open(sent time.Time, tok fence.Token) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.open, r.token, r.lastRenew = true, tok, sent
}

// Renewed moves the deadline to sent + RenewDeadline. It never reopens a
// closed fence: once a hold has ended, a late renew response must not let
// writes through again.
func (r *Renewal) Renewed(sent time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.open && sent.After(r.lastRenew) {
		r.lastRenew = sent
	}
}

// Close shuts the fence until the next Open; reason goes into refusals.
func (r *Renewal) Close(reason string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.open, r.reason = false, reason
}

// Token is the token of the current (or last) hold.
func (r *Renewal) Token() fence.Token {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.token
}

// Deadline is nil while the fence is open, with the instant it closes
// unless a renew moves it; otherwise a *fence.Error that says why not.
func (r *Renewal) Deadline() (time.Time, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	since := time.Duration(-1)
	if !r.lastRenew.IsZero() {
		since = r.clock.Since(r.lastRenew)
	}
	switch {
	case !r.open:
		return time.Time{}, &fence.Error{Lease: r.lease, SinceRenew: since, RenewDeadline: r.renewDeadline, Reason: r.reason}
	case r.lastRenew.IsZero() || since >= r.renewDeadline:
		return time.Time{}, &fence.Error{Lease: r.lease, SinceRenew: since, RenewDeadline: r.renewDeadline, Reason: "the lease was not renewed within the renew deadline"}
	}
	return r.clock.Now().Add(r.renewDeadline - since), nil
}

// Err is Deadline's error alone: nil while writes may pass.
func (r *Renewal) Err() error {
	_, err := r.Deadline()
	return err
}

// State returns whether a hold is open and when its last counted write was
// sent (zero before the first Open).
func (r *Renewal) State() (open bool, lastRenew time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.open, r.lastRenew
}

// Remaining is how long the fence stays open without a renew, and false
// when it is closed for another reason than time.
func (r *Renewal) Remaining() (time.Duration, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.open {
		return 0, false
	}
	return r.renewDeadline - r.clock.Since(r.lastRenew), true
}
