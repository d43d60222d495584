package leader

import (
	"errors"
	"sync"
	"time"

	"github.com/sirupsen/logrus"
	"k8s.io/utils/clock"
)

// failureLogInterval bounds how often one retry loop logs while it keeps
// failing: an unreachable apiserver must show in the log every few seconds,
// not flood it.
const failureLogInterval = 5 * time.Second

// newFailureLog returns a failure log on the elector's clock and logger:
// one per retry loop (a session's reads and writes, a term's renews).
func (e *Elector) newFailureLog() *failureLog { return &failureLog{clock: e.clock, log: e.log} }

// failureLog logs the failures of one retry loop: the first at once, then
// at most one line per failureLogInterval with the count, and one line when
// the loop recovers.
type failureLog struct {
	clock clock.PassiveClock
	log   *logrus.Entry

	mu       sync.Mutex
	failures int
	since    time.Time // first failure of the current run
	logged   time.Time // last line written
	last     error
}

func (l *failureLog) failed(msg string, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.clock.Now()
	if l.failures == 0 {
		l.since = now
	}
	l.failures++
	l.last = err
	if l.failures > 1 && now.Sub(l.logged) < failureLogInterval {
		return
	}
	l.logged = now
	entry := l.log.WithError(err).WithField("failures", l.failures)
	if l.failures > 1 {
		entry = entry.WithField("failingFor", now.Sub(l.since).Round(time.Millisecond).String())
	}
	var forbidden *ForbiddenError
	if errors.As(err, &forbidden) {
		entry.Error(msg + ": retrying until RBAC allows it")
		return
	}
	entry.Warn(msg + ": retrying")
}

func (l *failureLog) recovered(msg string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.failures == 0 {
		return
	}
	l.log.WithField("failures", l.failures).WithField("failedFor", l.clock.Since(l.since).Round(time.Millisecond).String()).Info(msg)
	l.failures = 0
	l.last = nil
}

// lastErr is the error of the current run of failures, nil after recovery.
func (l *failureLog) lastErr() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.last
}

// failingFor is how long the current run of failures has lasted and its
// last error; zero and nil when the loop is not failing.
func (l *failureLog) failingFor() (time.Duration, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.failures == 0 {
		return 0, nil
	}
	return l.clock.Since(l.since), l.last
}
