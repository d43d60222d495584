package leasewatch

import (
	"context"
	"fmt"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/apimachinery/pkg/watch"
	coordinationv1client "k8s.io/client-go/kubernetes/typed/coordination/v1"
	"k8s.io/utils/clock"
)

// Observer receives what the loop sees. Its methods are called from the
// loop's goroutine, one at a time.
type Observer interface {
	// Listed gets the Leases of a successful list.
	Listed(items []coordinationv1.Lease)
	// Observed gets a Lease from a watch event; deleted reports a deletion.
	Observed(l *coordinationv1.Lease, deleted bool)
	// Failed reports a failed "list" or "watch" (a watch that broke, too).
	Failed(op string, err error)
	// Recovered reports that op ("list" or "watch") answers again.
	Recovered(op string)
}

// Loop is one list-and-watch of Leases.
type Loop struct {
	Leases coordinationv1client.LeaseInterface
	// Selector holds the field or label selector of the list and watch.
	Selector metav1.ListOptions
	Clock    clock.Clock
	// RetryPeriod caps the backoff between failed attempts.
	RetryPeriod time.Duration
	Observer    Observer
}

// healthyWatch is how long a watch must run before its closing counts as
// the apiserver's timeout rather than a failure.
const healthyWatch = time.Second

// Run lists and watches until ctx ends.
func (l *Loop) Run(ctx context.Context) {
	backoff := l.newBackoff()
	for {
		opts := l.Selector
		list, err := l.Leases.List(ctx, opts)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			l.Observer.Failed("list", err)
			if !l.sleep(ctx, backoff.Step()) {
				return
			}
			continue
		}
		l.Observer.Recovered("list")
		l.Observer.Listed(list.Items)
		healthy := l.watchFrom(ctx, list.ResourceVersion)
		if ctx.Err() != nil {
			return
		}
		if healthy {
			backoff = l.newBackoff()
		}
		if !l.sleep(ctx, backoff.Step()) {
			return
		}
	}
}

// watchFrom watches from resourceVersion rv, resuming when the apiserver
// closes the watch, until an error calls for a relist. It reports whether
// the watch ran long enough to count as healthy.
func (l *Loop) watchFrom(ctx context.Context, rv string) (healthy bool) {
	for {
		opts := l.Selector
		opts.ResourceVersion, opts.AllowWatchBookmarks = rv, true
		w, err := l.Leases.Watch(ctx, opts)
		if ctx.Err() != nil {
			if err == nil {
				w.Stop()
			}
			return healthy
		}
		if err != nil {
			if !expired(err) {
				l.Observer.Failed("watch", err)
			}
			return healthy
		}
		l.Observer.Recovered("watch")
		began := l.Clock.Now()
		var werr error
		rv, werr = l.consume(ctx, w, rv)
		w.Stop()
		ran := l.Clock.Since(began)
		if ran >= healthyWatch {
			healthy = true
		}
		switch {
		case ctx.Err() != nil:
			return healthy
		case werr != nil && expired(werr):
			return true // relist at once
		case werr != nil:
			l.Observer.Failed("watch", werr)
			return healthy
		case ran < healthyWatch:
			return false // closed at once: relist after a backoff, not a spin
		}
		// The apiserver closed the watch after its timeout: resume.
	}
}

func expired(err error) bool { return apierrors.IsResourceExpired(err) || apierrors.IsGone(err) }

// consume hands the events of w to the observer until w closes, ctx ends,
// or it reports an error. It returns the last resourceVersion seen.
func (l *Loop) consume(ctx context.Context, w watch.Interface, rv string) (string, error) {
	for {
		select {
		case <-ctx.Done():
			return rv, nil
		case ev, ok := <-w.ResultChan():
			if !ok {
				return rv, nil
			}
			switch ev.Type {
			case watch.Added, watch.Modified, watch.Deleted:
				lease, ok := ev.Object.(*coordinationv1.Lease)
				if !ok {
					return rv, fmt.Errorf("unexpected %T in the lease watch", ev.Object)
				}
				rv = lease.ResourceVersion
				l.Observer.Observed(lease, ev.Type == watch.Deleted)
			case watch.Bookmark:
				if m, err := meta.Accessor(ev.Object); err == nil {
					rv = m.GetResourceVersion()
				}
			case watch.Error:
				return rv, apierrors.FromObject(ev.Object)
			}
		}
	}
}

func (l *Loop) newBackoff() *wait.Backoff { return NewBackoff(l.RetryPeriod) }

// NewBackoff is the backoff of retries after API errors: from 100ms (or
// retryPeriod, if shorter) doubling up to retryPeriod, with jitter.
func NewBackoff(retryPeriod time.Duration) *wait.Backoff {
	return &wait.Backoff{Duration: min(100*time.Millisecond, retryPeriod), Factor: 2, Jitter: 0.2, Steps: 64, Cap: retryPeriod}
}

func (l *Loop) sleep(ctx context.Context, d time.Duration) bool { return Sleep(ctx, l.Clock, d) }

// Sleep waits d on clk; false when ctx ended first.
func Sleep(ctx context.Context, clk clock.Clock, d time.Duration) bool {
	timer := clk.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-timer.C():
		return true
	}
}
