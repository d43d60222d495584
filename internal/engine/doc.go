// Package engine is rein's untyped controller engine: what handlers run on.
// It is internal: users reach it through pkg/framework (a Factory and its
// Options, what start runs) and pkg/generic (typed controllers, handlers
// and their results); rein's own packages use its operations (Ops).
//
// One Factory serves one group of controllers:
//
//   - ClientFactory builds REST clients per GroupVersion from one scheme and
//     one rest.Config, sharing one connection pool. Every request passes
//     fence.Transport: a write goes out under the hold its context carries
//     (a term or a shard), or the factory's fallback hold (GuardWrites), so
//     elections fence writes without this package knowing about them.
//   - CacheFactory keeps one shared informer per kind and form (see
//     below), in all namespaces, one, or a list (one list and watch per
//     namespace, seen as one informer and one store). KindCache shapes one
//     kind's cache: its namespaces, label and field selectors the
//     apiserver applies, and a transform run before objects enter the
//     cache (after managedFields are dropped, which is the default
//     transform: DropManagedFields). WaitForCacheSync never hangs: it
//     gives up after a timeout and names each kind that did not sync, with
//     its last list error.
//   - Controller is the shared controller of one kind: a deduplicating,
//     rate-limited queue of keys fed by the informer (changes ahead of the
//     keys a start queues, see Priority), a chain of named handlers run in
//     registration order, and workers.
//
// The split everything else rests on: StartCaches runs informers and
// WaitForCacheSync waits until the queues hold every key, on every replica,
// with no worker; StartWorkers runs the workers
// on the leader only, for one leadership term: they take keys until the
// term's context ends or Workers.Stop is called, and Workers.Wait drains
// the handlers that were running then. Every handler's context is the
// term's (with a logger, see Logger): it ends at once when the term does,
// and stays alive after Stop, so that a graceful stop lets running calls
// finish within the drain grace before the caller ends the term. The queue outlives a generation of
// workers, so a later term starts from a full queue without a relist.
//
// A Resource names its Form, the Go shape of its objects: Typed (the
// scheme's types, the default), Metadata (*metav1.PartialObjectMetadata:
// the apiserver sends only metadata, as protobuf, so the cache of a big
// kind costs a fraction of a typed one) or Unstructured (any kind, with no
// Go type; ClientFactory.DiscoverResource finds its plural and scope at
// run time). Each form of a kind has its own cache and controller, with
// the same handler chain, finalizers and write guard. Metadata objects
// carry their own kind's apiVersion and kind, not meta.k8s.io's, and
// cannot be created or updated, only patched.
//
// Handler results: nil goes on; ErrSkip ends this handler's work on the key
// quietly; RequeueAfter(d) processes the key again after d without counting
// a failure; any other error (and a recovered panic) retries the key with
// per-key exponential backoff combined with an overall token bucket. A
// conflict is recognised with apierrors.IsConflict and logged at debug
// level only: the retry reads the newer object.
//
// A controller made by NewManualController has the same handler chain on
// any ResourceClient and informer store, and runs it only when
// Controller.Process is called, which is what a worker does for one key:
// pkg/generic/fake drives one on an in-memory store so that handlers are
// unit-tested without an apiserver.
//
// OnRemove handlers (Controller.AddRemoveHandler) hold deletion with a
// finalizer that is added and removed by JSON merge patches carrying the
// object's resourceVersion, so several of them on one kind never undo each
// other's finalizers (the race of rancher#49328 / lasso#160). Finalizers
// come first: before any handler of the chain runs on a live object, the
// finalizers of all the controller's remove handlers are put on it in one
// patch, whatever the registration order, so nothing a change handler
// creates outside the cluster can escape its cleanup. If that patch fails
// no handler runs and the key is retried; an object already being deleted
// without them (held by someone else's finalizer) cannot get them any
// more: its remove handlers do not run, and change handlers see it with
// its deletionTimestamp set. An object the apiserver deleted past a
// finalizer it had just added (kubernetes/kubernetes#77988) gets its
// remove handlers run on its last state all the same.
//
// Metrics go to the prometheus.Registerer of Options, with
// controller-runtime's names and labels for what it measures too:
// controller_runtime_reconcile_* and the worker gauges per controller
// (reconcilemetrics.go: a reconcile is one chain run; how its handlers'
// results map to controller-runtime's is at reconciled), workqueue_* by
// name and controller, the depth also by priority ("0" high, "-100" low,
// controller-runtime's priority queue's values). rein's own:
// rein_handler_executions_total and rein_handler_duration_seconds per
// controller, handler and result, and rein_cache_objects per kind.
// Nothing is registered globally.
//
// Traces go to the trace.TracerProvider of Options (or of
// Ops.UseTracerProvider, pkg/start's): a span per worker's run of a key
// and per handler call, and a client span per request made in one, with
// traceparent (tracing.go). Without a provider nothing is traced, at the
// cost of an atomic load per key, handler call and request.
package engine
