package engine

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
)

// Reconcile timeout (Options.ReconcileTimeout, ReconcileTimeoutPerKind).
//
// It is set per kind, next to the workers and the retry pacing, rather
// than per handler: it exists to give a controller's workers back, and
// workers are the controller's, shared by handlers that independent
// packages register; the program that sizes them (WorkersPerKind) bounds
// how long one call may hold one. Each handler call of a worker's run gets
// the whole timeout as the deadline of its context.
//
// A call that returns past its deadline with an error is a timeout. A call
// still running when the deadline and a grace (timeoutGrace) have passed is
// left running: the worker fails the key as a timeout (retried with
// backoff), runs no further handler on it and takes the next key. The key
// stays the left call's: the queue hands it out again only after that
// call returns (its Done and the gate's done run then), so a key never
// runs twice at once. A worker starts one handler call at a time, so the
// worker count still bounds the handler calls started at once; the calls
// left running come on top, each owned by the generation of workers that
// started it (Workers.Wait waits for them and names them).
//
// What a left call still writes goes through the factory's guarded
// clients with the context it was given: it passes the fence only while
// this replica holds the term (or the key's shard) the call started
// under; a write after that hold ended is refused (fence.ErrFenced).

// timeoutGrace is how long a worker waits, past a handler's deadline, for
// the handler to notice its context and return: half the timeout, at most
// a second. A handler that respects its context returns in that time
// with its own error; one that does not is left running.
func timeoutGrace(timeout time.Duration) time.Duration {
	return min(timeout/2, time.Second)
}

// errReconcileTimeout is the cause of a handler context's end at its
// reconcile timeout, telling it from the end of the term or shard.
var errReconcileTimeout = errors.New("reconcile timeout")

// timeoutError is the failure of a handler call that ran past its
// reconcile timeout. It unwraps to context.DeadlineExceeded and to the
// handler's own error when it returned one.
type timeoutError struct {
	after time.Duration
	err   error // the handler's error; nil: it was left running
}

func (e *timeoutError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("did not return within its reconcile timeout of %v; left running, its key waits for it", e.after)
	}
	return fmt.Sprintf("ran past its reconcile timeout of %v: %v", e.after, e.err)
}

func (e *timeoutError) Unwrap() []error {
	if e.err == nil {
		return []error{context.DeadlineExceeded}
	}
	return []error{context.DeadlineExceeded, e.err}
}

// timedOut tells whether e is a handler's timeout.
func (e *HandlerError) timedOut() bool {
	_, ok := e.Err.(*timeoutError)
	return ok
}

// keyRun is one worker's run of one key, from the queue's Get to the
// release of the key.
type keyRun struct {
	// owner counts the goroutines of handler calls, so that the workers'
	// Wait also waits for the calls left running.
	owner *sync.WaitGroup
	key   string
	// done is the gate's, once the gate has admitted the key.
	done func()
	// left: a handler call was left running past its timeout; it releases
	// the key when it returns, the worker does not.
	left bool
}

// finish ends the worker's run: it releases the key, unless a call left
// running owns it.
func (c *Controller) finish(run *keyRun) {
	if !run.left {
		c.release(run.key, run.done)
	}
}

// release ends a run of key: the gate's done (if it admitted key), then
// the queue's Done, which lets the key be handed out again.
func (c *Controller) release(key string, done func()) {
	if done != nil {
		done()
	}
	c.queue.Done(key)
}

// call runs one handler of a chain: under the controller's reconcile
// timeout on a worker's run, directly otherwise (Process, or no timeout).
func (c *Controller) call(ctx context.Context, run *keyRun, h handlerEntry, key string, obj runtime.Object) (handlerOutput, *HandlerError) {
	if run == nil || c.timeout <= 0 {
		return c.callHandler(ctx, h, key, obj)
	}
	return c.callTimed(ctx, run, h, key, obj)
}

// callTimed runs h in a goroutine of run's owner with a context that ends
// at the controller's timeout, and waits for it until the timeout and its
// grace have passed. Then it leaves it running (run.left) and returns its
// timeout. The goroutine hands over its answer, or, once the worker has
// left, releases the key itself: taken says which of the two came first.
func (c *Controller) callTimed(ctx context.Context, run *keyRun, h handlerEntry, key string, obj runtime.Object) (handlerOutput, *HandlerError) {
	type answer struct {
		out  handlerOutput
		herr *HandlerError
	}
	hctx, cancel := context.WithTimeoutCause(ctx, c.timeout, errReconcileTimeout)
	answers := make(chan answer, 1)
	var taken atomic.Bool
	start, done := time.Now(), run.done
	run.owner.Go(func() {
		defer cancel()
		out, herr := c.callHandler(hctx, h, key, obj)
		if taken.CompareAndSwap(false, true) {
			answers <- answer{out, herr}
			return
		}
		c.overdue.Delete(key)
		entry := c.handlerLog(ctx, h.name, key).WithField("took", time.Since(start).Round(time.Millisecond))
		if herr != nil {
			entry = entry.WithError(herr.Err)
		}
		entry.Warn("handler left past its reconcile timeout returned; its key can run again")
		c.release(key, done)
	})

	timer := time.NewTimer(c.timeout + timeoutGrace(c.timeout))
	defer timer.Stop()
	var a answer
	select {
	case a = <-answers:
	case <-timer.C:
		// Listed before the worker lets go, so that the goroutine, which
		// unlists it, never runs before the listing.
		c.overdue.Store(key, h.name)
		if taken.CompareAndSwap(false, true) {
			run.left = true
			return handlerOutput{}, &HandlerError{Controller: c.name, Handler: h.name, Key: key, Err: &timeoutError{after: c.timeout}}
		}
		c.overdue.Delete(key) // it returned as the timer fired
		a = <-answers
	}
	if a.herr != nil && !a.herr.Panicked && context.Cause(hctx) == errReconcileTimeout {
		a.herr.Err = &timeoutError{after: c.timeout, err: a.herr.Err}
	}
	return a.out, a.herr
}

// overdueCalls names the handler calls left running past their timeout,
// "handler on key", sorted.
func (c *Controller) overdueCalls() []string {
	var out []string
	c.overdue.Range(func(key, handler any) bool {
		out = append(out, fmt.Sprintf("%s on %s", handler, key))
		return true
	})
	sort.Strings(out)
	return out
}
