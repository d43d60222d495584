package leader

import (
	"context"
	"net/http"
	"sync"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/utils/clock"
)

// Fence answers whether this replica may write now. It is open while a term
// is live and the last successful renew was SENT less than RenewDeadline
// ago, by this process's monotonic clock.
//
// Why from the send and not from the response: the apiserver may have
// stored the renew at any instant between the two, and a standby starts its
// LeaseDuration countdown when it sees the stored record, which is no
// earlier than the send. Counting from the response would let a slow
// response (a GC pause, a congested link, a response stuck for seconds)
// stretch this replica's belief past what the standbys grant it; counting
// from the send keeps RenewDeadline < LeaseDuration a real margin however
// long the response took.
//
// Allowed reads the clock at every call instead of trusting a timer to have
// closed the fence: after a process stall (SIGSTOP/SIGCONT, a long GC pause)
// the timer's goroutine may not have run yet, but the first write after the
// stall asks the clock and is refused.
//
// A Fence lives as long as its Elector and serves every term in turn; it is
// safe for concurrent use. A nil *Fence is always closed.
type Fence struct {
	lease         string
	renewDeadline time.Duration
	clock         clock.PassiveClock

	mu      sync.Mutex
	holding bool   // a term is live
	reason  string // why closed, when !holding
	// lastRenew is the send time of the last successful renew that counts
	// (see Term.renewed); zero when this elector never renewed. It keeps the
	// monotonic clock reading of time.Now, so wall-clock steps do not move it.
	lastRenew time.Time
}

func newFence(lease string, renewDeadline time.Duration, c clock.PassiveClock) *Fence {
	return &Fence{lease: lease, renewDeadline: renewDeadline, clock: c, reason: "no leadership term is live"}
}

// Allowed reports whether this replica may write now.
func (f *Fence) Allowed() bool { return f.Err() == nil }

// Err is nil while this replica may write, and otherwise a *FencedError
// that says why not (errors.Is(err, ErrFenced) holds).
func (f *Fence) Err() error {
	if f == nil {
		return &FencedError{Lease: "(none)", SinceRenew: -1, Reason: "nil fence"}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	since := time.Duration(-1)
	if !f.lastRenew.IsZero() {
		since = f.clock.Since(f.lastRenew)
	}
	switch {
	case !f.holding:
		return &FencedError{Lease: f.lease, SinceRenew: since, RenewDeadline: f.renewDeadline, Reason: f.reason}
	case since >= f.renewDeadline:
		return &FencedError{Lease: f.lease, SinceRenew: since, RenewDeadline: f.renewDeadline, Reason: "the lease was not renewed within the renew deadline"}
	}
	return nil
}

// Deadline is Err with the instant the fence will close unless a renew
// moves it: a write allowed now must not be in flight after it (pkg/start
// cuts the deadline of every fenced request to it).
func (f *Fence) Deadline() (time.Time, error) {
	if err := f.Err(); err != nil {
		return time.Time{}, err
	}
	left, holding := f.remaining()
	if !holding {
		return time.Time{}, f.Err()
	}
	return time.Now().Add(left), nil
}

// open starts a term whose acquiring write was sent at sent.
func (f *Fence) open(sent time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.holding = true
	f.lastRenew = sent
}

// renewed moves the fence's deadline to sent + RenewDeadline. It never
// reopens a closed fence: once a term has ended, a late renew response must
// not let writes through again.
func (f *Fence) renewed(sent time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.holding && sent.After(f.lastRenew) {
		f.lastRenew = sent
	}
}

// close shuts the fence until the next term.
func (f *Fence) close(reason string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.holding = false
	f.reason = reason
}

// remaining returns how long the fence stays open, and false when it is
// closed for another reason than time.
func (f *Fence) remaining() (time.Duration, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.holding {
		return 0, false
	}
	return f.renewDeadline - f.clock.Since(f.lastRenew), true
}

// state returns whether a term is live and when its last counted renew was sent.
func (f *Fence) state() (holding bool, lastRenew time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.holding, f.lastRenew
}

// bypassKey marks the context of the elector's own lease requests, which
// must pass even a closed fence: renewing and releasing are how a fence is
// opened and how the lease is handed over.
type bypassKey struct{}

func bypassFence(ctx context.Context) context.Context {
	return context.WithValue(ctx, bypassKey{}, true)
}

// WrapConfig returns a copy of cfg whose clients refuse mutating requests
// (POST, PUT, PATCH, DELETE) with a *FencedError while f is closed. Reads
// and watches always pass: a standby may keep its caches warm. Build the
// clients handed to leader-only code from this config.
func WrapConfig(cfg *rest.Config, f *Fence) *rest.Config {
	c := rest.CopyConfig(cfg)
	c.Wrap(func(rt http.RoundTripper) http.RoundTripper { return WrapRoundTripper(rt, f) })
	return c
}

// WrapRoundTripper returns a RoundTripper that refuses mutating requests
// with a *FencedError while f is closed and passes everything else to next.
func WrapRoundTripper(next http.RoundTripper, f *Fence) http.RoundTripper {
	return &fencedTransport{next: next, fence: f}
}

type fencedTransport struct {
	next  http.RoundTripper
	fence *Fence
}

func (t *fencedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	switch req.Method {
	case http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete:
		if req.Context().Value(bypassKey{}) == nil {
			if err := t.fence.Err(); err != nil {
				// A RoundTripper must close the body even when it fails.
				if req.Body != nil {
					_ = req.Body.Close()
				}
				return nil, err
			}
		}
	}
	return t.next.RoundTrip(req)
}

// WrappedRoundTripper lets client-go and net/http utilities reach the
// transport underneath (k8s.io/apimachinery/pkg/util/net.RoundTripperWrapper).
func (t *fencedTransport) WrappedRoundTripper() http.RoundTripper { return t.next }
