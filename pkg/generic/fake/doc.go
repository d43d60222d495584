// Package fake unit-tests handlers in milliseconds, with no apiserver. An
// Env is an in-memory object store, and env.Factory() a framework.Factory
// whose kinds live there: a test builds its controllers on it as main does
// on its own factory (generated accessors, generic.NewController,
// apply.New), registers handlers with the same code as its main (OnChange,
// OnRemove, generated Register<Kind>StatusHandler), and runs a
// controller's handler chain on one key with Reconcile:
//
//	env, err := fake.New(scheme, &v1alpha1.VirtualMachine{...})
//	vms := vmctrl.New(env.Factory()).VirtualMachine()
//	controller.Register(ctx, vms, hv, recorder, opts) // as main does
//	err = env.Reconcile(ctx, vms.GroupVersionKind(), "default/vm1")
//	vm, err := vms.Get(ctx, "default", "vm1", metav1.GetOptions{})
//
// Reconcile runs rein's own chain (the engine's, as a worker runs it): handlers
// in registration order, each given the object the previous one returned;
// OnRemove finalizers added and removed by merge patches with a
// resourceVersion precondition, all of them added in one patch before any
// handler runs on a live object (finalizers first, whatever the
// registration order); ErrSkip, RequeueAfter, errors and panics
// treated as the engine treats them. It returns the failures of the
// handlers joined (each a *generic.HandlerError), and retries nothing.
// Keys a handler queues (Enqueue, EnqueueAfter) and the delay of a
// RequeueAfter are recorded, in order, by Enqueued.
//
// Handlers get a context carrying the hold fence.Fixed(env.Token()): a
// fencing token without a fence, as in a leader's term that never ends.
// fence.TokenFrom returns the token, and a client whose transport is
// fence.Transport passes every request (no fence to check) with the
// header Rein-Fencing-Token: fake/fake/1, so handlers that call systems
// outside the cluster can be tested against an httptest server.
//
// The store acts as an apiserver does where handler logic depends on it:
// resourceVersions, with conflicts on stale updates, patches and delete
// preconditions; uid, creationTimestamp and generateName at create;
// metadata.generation, 1 at create and one more for every change outside
// metadata and status (as for custom resources) and when a deletion
// starts; deletion held by finalizers (deletionTimestamp set, the object
// gone with its last finalizer, no finalizer added once deleting); status
// as a subresource of every kind whose Go type has a Status field (Update
// keeps the stored status, UpdateStatus changes nothing else, Create
// drops it); updates that change nothing write nothing; JSON, merge and
// strategic merge patches (client-go's fake applies them); label
// selectors, and field selectors on metadata.name and metadata.namespace.
// Objects given to New or Add are stored as they are, status included.
//
// Handlers that keep child objects get their apply.Applier from
// apply.New(env.Factory()), so a generating handler runs as in
// main: children created, updated, pruned and deleted with their owner's
// OnRemove. Server-side apply is simplified to one field manager: an
// applied object is created, or replaces the stored one's content (system
// metadata, status, and labels, annotations and finalizers the applied
// object does not name are kept). The apiserver merges per field manager;
// the results agree whenever one manager owns the object, as a Set does
// its children.
//
// Its limits, which are those of handler logic tested alone: there is no
// validation, defaulting, admission, schema pruning, namespace lifecycle,
// garbage collection of owned objects, watch, field ownership or paging,
// and options (dry run, field managers, propagation) are ignored. Only
// typed controllers run on it: metadata-only and dynamic controllers
// (types *metav1.PartialObjectMetadata, *unstructured.Unstructured) are
// refused with that reason. Starting env.Factory() (pkg/start, caches,
// workers) fails: nothing runs until Reconcile is called. The cache is the store: a handler's write is visible to the next
// Reconcile at once, where a real cache lags behind, and nothing is
// processed unless Reconcile is called. Each typed controller's Informer
// never runs: its store is the Env's, and event handlers added to it never
// fire. rein's own behaviour (informers, the queue and its backoff,
// workers and draining, leader election, write fencing, cache lag) is
// proven against a real apiserver by rein's tests (pkg/testenv); test a
// controller's wiring and its tolerance of those there too.
//
// An Env starts no goroutine, so there is nothing to stop; a handler
// registered with a context is removed when that context ends, as on a
// factory. An Env is safe for concurrent use.
package fake
