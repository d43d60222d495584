package leader

import (
	"context"
	"sync"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"

	"github.com/rein-k8s/rein/internal/leasewatch"
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
		failures: e.newFailureLog(),
		writes:   e.newFailureLog(),
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
	loop := leasewatch.Loop{
		Leases:      e.leases,
		Selector:    metav1.ListOptions{FieldSelector: fields.OneTermEqualSelector("metadata.name", e.name).String()},
		Clock:       e.clock,
		RetryPeriod: e.retryPeriod,
		Observer:    (*sessionObserver)(s),
	}
	loop.Run(ctx)
}

// sessionObserver is the session as the lease watch loop sees it.
type sessionObserver session

func (o *sessionObserver) Listed(items []coordinationv1.Lease) {
	s := (*session)(o)
	var found *coordinationv1.Lease
	for i := range items {
		if items[i].Name == s.e.name {
			found = &items[i]
		}
	}
	s.observe(found)
}

func (o *sessionObserver) Observed(l *coordinationv1.Lease, deleted bool) {
	s := (*session)(o)
	switch {
	case l.Name != s.e.name:
	case deleted:
		s.observe(nil)
	default:
		s.observe(l)
	}
}

func (o *sessionObserver) Failed(op string, err error) {
	s := (*session)(o)
	s.failures.failed("cannot "+op+" lease "+s.e.key, s.e.explain(op, err))
}

// Recovered counts once the apiserver answers, not once the watch opens:
// the answer can let the campaign win, which ends this session before it
// watches.
func (o *sessionObserver) Recovered(op string) {
	s := (*session)(o)
	if op == "list" {
		s.failures.recovered("reading the lease again")
	} else {
		s.failures.recovered("watching the lease again")
	}
}
