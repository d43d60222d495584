package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/go-logr/logr"
	"github.com/sirupsen/logrus"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/rein-k8s/rein/internal/logbridge"
	"github.com/rein-k8s/rein/pkg/fence"
)

// Handler is one link of a controller's handler chain. key is
// "namespace/name" (or "name" for cluster-scoped kinds). obj is a private
// copy of the cached object, or nil when the object no longer exists. The
// returned object, when not nil, is what the next handler gets: return the
// answer of an Update so the next handler does not work on a stale copy.
//
// ctx ends the moment this replica's leadership term does (a lost lease:
// at once; a graceful stop: after the drain grace), or at the controller's
// reconcile timeout (Options.ReconcileTimeout), so pass it to every call
// that may block; Logger(ctx) is a logger with the controller, handler,
// key and token fields, also as a logr.Logger (logr.FromContext) and an
// *slog.Logger (Slog). When the factory traces (Options.TracerProvider),
// ctx carries the call's span: trace.SpanFromContext(ctx) adds to it, and
// its TracerProvider() starts child spans.
type Handler func(ctx context.Context, key string, obj runtime.Object) (runtime.Object, error)

// loggerKey keys a handler's logger in its context.
type loggerKey struct{}

// withLogger returns ctx carrying log as the handler's logger: for Logger
// and Slog, and, under logr's own key, as a logr.Logger writing through
// it, so that code using logr's convention (logr.FromContext,
// controller-runtime's log.FromContext) logs with the same fields.
func withLogger(ctx context.Context, log *logrus.Entry) context.Context {
	ctx = context.WithValue(ctx, loggerKey{}, log)
	return logr.NewContext(ctx, logbridge.Logr(log, logbridge.HandlerTraceFrom))
}

// handlerLog is the logger of handler's call on key: the controller's,
// with the handler, the key and, when ctx carries a hold with a fencing
// token, the token (<namespace>/<lease>/<term>: a leadership term's, or a
// shard's, whose lease is <group>-shard-<n>).
func (c *Controller) handlerLog(ctx context.Context, handler, key string) *logrus.Entry {
	if tok, ok := fence.TokenFrom(ctx); ok {
		return c.log.WithFields(logrus.Fields{"handler": handler, "key": key, "token": tokenField(tok)})
	}
	return c.log.WithFields(logrus.Fields{"handler": handler, "key": key})
}

// tokenField is a fencing token as a log field: formatted only when a line
// is written (fence.Token's String), not at every handler call; a
// fmt.Stringer and an encoding.TextMarshaler, so that JSON shows the
// string too.
type tokenField fence.Token

func (t tokenField) String() string { return fence.Token(t).String() }

func (t tokenField) MarshalText() ([]byte, error) { return []byte(t.String()), nil }

// Logger returns the logger of a handler's context: the factory's logger
// with the controller, handler, key and token fields. Outside a handler
// it returns logrus's standard logger.
func Logger(ctx context.Context) *logrus.Entry {
	if log, ok := ctx.Value(loggerKey{}).(*logrus.Entry); ok {
		return log
	}
	return logrus.NewEntry(logrus.StandardLogger())
}

// Slog returns Logger(ctx) as an *slog.Logger: the same entry, fields and
// sink; slog's levels map to logrus's (Debug to debug, below it to
// trace), attributes become fields.
func Slog(ctx context.Context) *slog.Logger { return slog.New(logbridge.Slog(Logger(ctx))) }

// ErrSkip, returned by a handler, ends its work on this key quietly: it is
// neither an error nor retried. The rest of the chain still runs.
var ErrSkip = errors.New("skip")

// RequeueAfterError asks for the key to be processed again after Delay,
// without counting as a failure: use it to poll something outside the
// cluster (a VM that is still provisioning). Build it with RequeueAfter.
type RequeueAfterError struct {
	Delay time.Duration
}

func (e *RequeueAfterError) Error() string { return fmt.Sprintf("requeue after %v", e.Delay) }

// RequeueAfter returns an error that asks for the key to be processed again
// after d. When several handlers of a chain ask, the shortest delay wins;
// a real error in the same chain wins over all of them (backoff applies).
func RequeueAfter(d time.Duration) error { return &RequeueAfterError{Delay: d} }

// handlerEntry is a registered handler. id tells entries with the same name
// apart when one is unregistered.
type handlerEntry struct {
	id   uint64
	name string
	// spanName names the span of a call when tracing ("handler <name>").
	spanName string
	fn       chainHandler
	filter   *changeFilter // nil: runs on every key processed
	// finalizer is the finalizer of a remove handler (AddRemoveHandler),
	// "" for a change handler; remove is that handler as its author
	// wrote it, which the chain runs on an object that vanished past
	// the finalizer (see vanished.go).
	finalizer string
	remove    Handler
	// done is the Done channel of the context the handler was registered
	// with: once it is closed the handler no longer counts, even before
	// it is taken out of the chain.
	done <-chan struct{}
}

// ended says whether the handler's registration context has ended.
func (e *handlerEntry) ended() bool {
	select {
	case <-e.done:
		return true
	default:
		return false
	}
}

// HandlerOption configures one registered handler.
type HandlerOption func(*handlerEntry)

// IgnoreStatus keeps a handler from running again on an object whose only
// changes since the handler last succeeded on it are to its status, its
// resourceVersion or its managedFields: an object's own status writes
// (typically the chain's own) do not re-run it, as controller-runtime's
// GenerationChangedPredicate does, but per handler, so that other handlers
// of the shared controller still see every change. A key queued
// explicitly (Enqueue, EnqueueAfter, a related watch, RequeueAfter) runs it
// regardless, as does a deleted object, a failure's retry, and the first
// time it sees a key in this process.
func IgnoreStatus() HandlerOption {
	return func(e *handlerEntry) { e.filter = &changeFilter{last: map[string]uint64{}} }
}

// HandlerError is one handler's failure on one key.
type HandlerError struct {
	Controller string
	Handler    string
	Key        string
	Err        error
	// Panicked is true when the handler panicked; Err then holds the panic
	// value and Stack the goroutine's stack.
	Panicked bool
	Stack    []byte
}

func (e *HandlerError) Error() string {
	verb := "failed"
	if e.Panicked {
		verb = "panicked"
	}
	return fmt.Sprintf("controller %s: handler %s %s on %s: %v", e.Controller, e.Handler, verb, e.Key, e.Err)
}

func (e *HandlerError) Unwrap() error { return e.Err }

// chainResult sums up one run of a handler chain on one key.
type chainResult struct {
	errs         []*HandlerError
	requeueAfter time.Duration // 0: none asked
	// notRun: no handler ran, because the finalizers of the remove
	// handlers could not be put on the object first.
	notRun bool
}

func (r *chainResult) askRequeue(d time.Duration) {
	if d <= 0 {
		d = time.Nanosecond // "as soon as possible", still not a failure
	}
	if r.requeueAfter == 0 || d < r.requeueAfter {
		r.requeueAfter = d
	}
}
