package generic

import (
	"context"
	"log/slog"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/rein-k8s/rein/internal/engine"
)

// Resource names a kind for the engine: its GroupVersionKind, its plural
// (the REST path) and whether it is namespaced. Generated code declares one
// per kind (<Kind>Resource); Factory.DiscoverResource finds one at run
// time. Form, the Go shape of its objects, is set by NewController from
// the controller's types.
type Resource = engine.Resource

// ErrSkip, returned by a handler, ends its work on this key quietly: it is
// neither an error nor retried. The rest of the chain still runs.
var ErrSkip = engine.ErrSkip

// RequeueAfter, returned by a handler as its error, has the key processed
// again after d without counting as a failure: to poll something outside
// the cluster. When several handlers of a chain ask, the shortest delay
// wins; a real error in the same chain wins over all of them.
func RequeueAfter(d time.Duration) error { return engine.RequeueAfter(d) }

// Logger returns the logger of a handler's context: the factory's logger
// with the controller, handler and key fields, and token (the fencing
// token of the term or shard the handler runs under; none with leader
// election off). Outside a handler it is logrus's standard logger.
//
// The same logger, writing to the same sink with the same fields, is a
// logr.Logger under logr's context key (logr.FromContextOrDiscard(ctx);
// controller-runtime's log.FromContext(ctx) finds it too), with V(1) at
// debug and V(2) and up at trace, and an *slog.Logger (Slog).
func Logger(ctx context.Context) *logrus.Entry { return engine.Logger(ctx) }

// Slog returns the handler's logger (Logger) as an *slog.Logger: slog's
// Debug logs at logrus's debug, anything below it at trace; attributes
// become fields.
func Slog(ctx context.Context) *slog.Logger { return engine.Slog(ctx) }

// HandlerError is one handler's failure on one key, as the engine logs and
// counts it and as fake.Env.Reconcile returns it: which controller, which
// handler, which key, the error, and whether (and where) it panicked.
type HandlerError = engine.HandlerError

// HandlerOption configures one registered handler (IgnoreStatus).
type HandlerOption = engine.HandlerOption

// IgnoreStatus keeps a handler from running again on an object whose only
// changes since the handler last succeeded on it are to its status, its
// resourceVersion or its managedFields, so that the chain's own status
// writes do not re-run it. Other handlers of the kind still see every
// change; a key queued explicitly (Enqueue, RequeueAfter, a related watch),
// a deletion, a retry and the first sight of a key run it regardless.
func IgnoreStatus() HandlerOption { return engine.IgnoreStatus() }

// FinalizerName is the finalizer an OnRemove handler named name manages:
// name itself when it is qualified ("example.com/cleanup"), else
// "rein.dev/<name>". It fails when the result is not a valid finalizer.
func FinalizerName(name string) (string, error) { return engine.FinalizerName(name) }
