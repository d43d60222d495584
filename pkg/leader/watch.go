package leader

import (
	"context"
	"fmt"
	"sync"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/watch"
)

// observation is what a session knows of the lease.
type observation struct {
	known bool                  // a list has answered
	lease *coordinationv1.Lease // nil: the lease does not exist
	// changedAt is when, by this replica's clock, the session last saw the
	// record change. It is the only time a standby trusts.
	changedAt time.Time
}

// session keeps an observation of the lease current with a list and a
// single-object watch (field selector metadata.name), relisting only when
// the watch cannot be resumed. It sends no periodic requests: a watch that
// the apiserver closes after its timeout is resumed from the last
// resourceVersion, which is one new watch request, not a poll.
type session struct {
	e        *Elector
	cancel   context.CancelFunc
	done     chan struct{}
	changed  chan struct{} // signalled after every observation
	failures *failureLog   // of the list and watch
	writes   *failureLog   // of the campaign's attempts to take the lease

	mu          sync.Mutex
	obs         observation
	warnedClash bool
}

func (e *Elector) startSession(ctx context.Context) *session {
	ctx, cancel := context.WithCancel(ctx)
	s := &session{
		e:        e,
		cancel:   cancel,
		done:     make(chan struct{}),
		changed:  make(chan struct{}, 1),
		failures: &failureLog{clock: e.clock, log: e.log},
		writes:   &failureLog{clock: e.clock, log: e.log},
	}
	e.mu.Lock()
	e.session = s
	e.mu.Unlock()
	go s.run(ctx)
	return s
}

// stop ends the watch and waits for its goroutine.
func (s *session) stop() {
	s.cancel()
	<-s.done
	s.e.mu.Lock()
	if s.e.session == s {
		s.e.session = nil
	}
	s.e.mu.Unlock()
}

// snapshot returns the current observation. It first drains the change
// signal, so a signal seen after the snapshot means a newer observation.
func (s *session) snapshot() observation {
	select {
	case <-s.changed:
	default:
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.obs
}

// observe records the lease as the watch shows it (nil: absent).
func (s *session) observe(l *coordinationv1.Lease) {
	now := s.e.clock.Now()
	s.mu.Lock()
	prev := s.obs
	changed := !prev.known || (prev.lease == nil) != (l == nil) ||
		(l != nil && !sameRecord(&prev.lease.Spec, &l.Spec))
	s.obs.known = true
	s.obs.lease = l
	if changed {
		s.obs.changedAt = now
	}
	s.mu.Unlock()
	select {
	case s.changed <- struct{}{}:
	default:
	}
	if changed {
		s.e.observed(l)
	}
}

func (s *session) warnIdentityClash() {
	s.mu.Lock()
	warned := s.warnedClash
	s.warnedClash = true
	s.mu.Unlock()
	if !warned {
		s.e.log.Warn("the lease names this replica's identity but holds a record this replica did not write: another process uses the same identity; waiting for it to expire like any other holder (use NewIdentity for unique identities)")
	}
}

func (s *session) run(ctx context.Context) {
	defer close(s.done)
	e := s.e
	backoff := e.newBackoff()
	selector := fields.OneTermEqualSelector("metadata.name", e.name).String()
	for {
		list, err := e.leases.List(ctx, metav1.ListOptions{FieldSelector: selector})
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			s.failures.failed("cannot list lease "+e.key, e.explain("list", err))
			if !e.sleep(ctx, backoff.Step()) {
				return
			}
			continue
		}
		// Recovered once the apiserver answers, not once the watch opens:
		// the answer can let the campaign win, which ends this session
		// before it watches.
		s.failures.recovered("reading the lease again")
		var found *coordinationv1.Lease
		for i := range list.Items {
			if list.Items[i].Name == e.name {
				found = &list.Items[i]
			}
		}
		s.observe(found)
		healthy := s.watchFrom(ctx, selector, list.ResourceVersion)
		if ctx.Err() != nil {
			return
		}
		if healthy {
			backoff = e.newBackoff()
		}
		if !e.sleep(ctx, backoff.Step()) {
			return
		}
	}
}

// watchFrom watches from resourceVersion rv, resuming the watch when the
// apiserver closes it, until an error calls for a relist. It reports
// whether the watch ran long enough to count as healthy.
func (s *session) watchFrom(ctx context.Context, selector, rv string) (healthy bool) {
	e := s.e
	for {
		w, err := e.leases.Watch(ctx, metav1.ListOptions{
			FieldSelector:       selector,
			ResourceVersion:     rv,
			AllowWatchBookmarks: true,
		})
		if ctx.Err() != nil {
			if err == nil {
				w.Stop()
			}
			return healthy
		}
		if err != nil {
			if !apierrors.IsResourceExpired(err) && !apierrors.IsGone(err) {
				s.failures.failed("cannot watch lease "+e.key, e.explain("watch", err))
			}
			return healthy
		}
		s.failures.recovered("watching the lease again")
		began := e.clock.Now()
		var werr error
		rv, werr = s.consume(ctx, w, rv)
		w.Stop()
		if e.clock.Since(began) >= time.Second {
			healthy = true
		}
		switch {
		case ctx.Err() != nil:
			return healthy
		case werr != nil && (apierrors.IsResourceExpired(werr) || apierrors.IsGone(werr)):
			e.log.WithError(werr).Debug("lease watch expired: relisting")
			return true
		case werr != nil:
			s.failures.failed("lease watch failed", e.explain("watch", werr))
			return healthy
		case e.clock.Since(began) < time.Second:
			// Closed at once: relist after a backoff rather than spin.
			return false
		}
		// The apiserver closed the watch after its timeout: resume.
	}
}

// consume applies the events of w until it closes, ctx ends, or it reports
// an error. It returns the last resourceVersion seen.
func (s *session) consume(ctx context.Context, w watch.Interface, rv string) (string, error) {
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
				l, ok := ev.Object.(*coordinationv1.Lease)
				if !ok {
					return rv, fmt.Errorf("unexpected %T in the lease watch", ev.Object)
				}
				rv = l.ResourceVersion
				if l.Name != s.e.name {
					continue
				}
				if ev.Type == watch.Deleted {
					s.observe(nil)
				} else {
					s.observe(l)
				}
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
