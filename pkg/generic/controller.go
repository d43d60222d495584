package generic

import (
	"context"
	"fmt"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/tools/cache"

	"github.com/rein-k8s/rein/internal/engine"
	"github.com/rein-k8s/rein/pkg/framework"
)

// ObjectHandler handles one key. obj is a private copy of the cached object
// (change it freely), or nil when the object was deleted. Return the object
// the next handler should see (the answer of an Update), or nil to pass obj
// on unchanged. An error retries the key with backoff; ErrSkip and
// RequeueAfter are the other results.
//
// ctx ends the moment this replica's hold on the key does (a leader's term
// or a shard: a lost lease at once, a graceful stop after the drain grace),
// or at the controller's reconcile timeout
// (framework.Options.ReconcileTimeout): pass it to every call.
// Logger(ctx) logs with the controller, handler, key and token (also as
// logr, logr.FromContext(ctx), and slog, Slog(ctx)). With tracing on,
// ctx carries the call's span (trace.SpanFromContext(ctx)), and the
// writes made with it join the trace.
type ObjectHandler[T runtime.Object] func(ctx context.Context, key string, obj T) (T, error)

// Client reads and writes objects of one kind. Every call takes the
// caller's context. For a cluster-scoped kind, namespace is always "".
//
// Writes are conditional by default: Update and UpdateStatus carry obj's
// resourceVersion (as every Kubernetes update does); Patch and Delete take
// the object the handler read and make the apiserver refuse the write
// (409 Conflict) if the object changed since, or was replaced by another
// of the same name: a write based on an old read, or one that a
// partitioned network delivers late, cannot land on a newer object.
// PatchByName and DeleteByName are the unconditional forms, for objects
// the caller has not read.
type Client[T runtime.Object, TList runtime.Object] interface {
	Create(ctx context.Context, obj T) (T, error)
	Update(ctx context.Context, obj T) (T, error)
	UpdateStatus(ctx context.Context, obj T) (T, error)
	// Delete deletes obj with its UID and resourceVersion as preconditions,
	// unless opts names preconditions (an empty &metav1.Preconditions{}
	// means none).
	Delete(ctx context.Context, obj T, opts metav1.DeleteOptions) error
	// DeleteByName deletes namespace/name whatever its version.
	DeleteByName(ctx context.Context, namespace, name string, opts metav1.DeleteOptions) error
	DeleteCollection(ctx context.Context, namespace string, opts metav1.DeleteOptions, listOpts metav1.ListOptions) error
	Get(ctx context.Context, namespace, name string, opts metav1.GetOptions) (T, error)
	List(ctx context.Context, namespace string, opts metav1.ListOptions) (TList, error)
	Watch(ctx context.Context, namespace string, opts metav1.ListOptions) (watch.Interface, error)
	// Patch patches obj, on condition that it still has obj's
	// resourceVersion: merge and strategic-merge patches get
	// metadata.resourceVersion unless they set it, JSON patches a leading
	// test operation on /metadata/resourceVersion. A server-side apply
	// (types.ApplyPatchType) is sent as it is: apply has its own conflict
	// rules (field managers).
	Patch(ctx context.Context, obj T, pt types.PatchType, data []byte, subresources ...string) (T, error)
	// PatchByName patches namespace/name whatever its version.
	PatchByName(ctx context.Context, namespace, name string, pt types.PatchType, data []byte, subresources ...string) (T, error)
}

// Controller is the typed controller of one kind: its handler chain, its
// queue, its cache and its client. The kind's scope needs nothing of its
// own: for a cluster-scoped kind every namespace argument is "" and keys
// are names.
type Controller[T runtime.Object, TList runtime.Object] interface {
	Client[T, TList]

	// OnChange appends h to the handler chain until ctx ends. Handlers run
	// in registration order on the same key. IgnoreStatus keeps h from
	// re-running on status-only changes.
	OnChange(ctx context.Context, name string, h ObjectHandler[T], opts ...HandlerOption)
	// OnRemove runs h when an object is being deleted, holding the
	// deletion with a finalizer named after name while h is registered
	// (see FinalizerName). The finalizer is removed when h succeeds.
	// Finalizers come first: every live object carries the finalizers of
	// all OnRemove handlers before any handler of the chain runs on it,
	// whatever the registration order. An object that is already being
	// deleted when it is first seen, without them, cannot get them any
	// more: its remove handlers do not run, and change handlers see it
	// with its deletionTimestamp set.
	OnRemove(ctx context.Context, name string, h ObjectHandler[T])
	// Enqueue queues namespace/name for the handler chain, at high
	// priority: ahead of the keys a start queues (the first pass over
	// every cached object), as changes are.
	Enqueue(namespace, name string)
	// EnqueueAfter queues namespace/name after delay, as Enqueue.
	EnqueueAfter(namespace, name string, delay time.Duration)
	// EnqueueLow queues namespace/name after delay (0: now) at low
	// priority: behind changes, with the keys a start queues and those of
	// RequeueAfter, for work no user waits on (a periodic recheck of many
	// keys). Low keys still get a share of the workers while changes
	// keep coming. A key already queued at high priority stays there.
	EnqueueLow(namespace, name string, delay time.Duration)
	// Cache reads from the shared informer cache.
	Cache() Cache[T]
	// Informer is the kind's shared informer (on a fake.Env, one that
	// never runs: its store is the fake's, its event handlers never fire).
	Informer() cache.SharedIndexInformer
	// GroupVersionKind is the kind served.
	GroupVersionKind() schema.GroupVersionKind
}

// NewController returns the typed controller of res on factory. T and TList
// are the Go types of its objects, and they choose the form the kind is
// served in: the scheme's types (res.GVK and its list kind must be
// registered), *metav1.PartialObjectMetadata and its list (metadata only:
// the apiserver sends no spec or status, so the cache costs a fraction;
// write such objects with Patch), or *unstructured.Unstructured and its list
// (any kind, with no Go type: Factory.DiscoverResource finds res at run
// time). Each form of a kind has its own cache and queue, with the same
// handler chain rules, finalizers, fencing and election.
//
// Nothing starts here: the informer and the shared controller are made on
// first use, and a mistake (a kind the scheme does not know) is reported by
// the factory's start or by the call that needed it.
func NewController[T runtime.Object, TList runtime.Object](factory *framework.Factory, res Resource) Controller[T, TList] {
	var obj T
	res.Form = engine.FormOf(obj)
	ops := engine.OpsOf(factory)
	checkForm[T, TList](ops, res)
	return &typed[T, TList]{ops: ops, res: res}
}

type typed[T runtime.Object, TList runtime.Object] struct {
	ops *engine.Ops
	res Resource

	clientOnce sync.Once
	client     engine.ResourceClient
	clientErr  error
}

func (c *typed[T, TList]) GroupVersionKind() schema.GroupVersionKind { return c.res.GVK }

// Informer returns the kind's shared informer, or nil when the scheme does
// not know the kind (the replica reports that when it starts).
func (c *typed[T, TList]) Informer() cache.SharedIndexInformer {
	inf, err := c.ops.Informer(c.res)
	if err != nil {
		c.ops.SetupError(err)
		return nil
	}
	return inf
}

func (c *typed[T, TList]) OnChange(ctx context.Context, name string, h ObjectHandler[T], opts ...HandlerOption) {
	ctrl, err := c.ops.Controller(c.res)
	if err != nil {
		c.ops.SetupError(fmt.Errorf("OnChange %q: %w", name, err))
		return
	}
	ctrl.AddHandler(ctx, name, adapt(h), opts...)
}

func (c *typed[T, TList]) OnRemove(ctx context.Context, name string, h ObjectHandler[T]) {
	ctrl, err := c.ops.Controller(c.res)
	if err == nil {
		err = ctrl.AddRemoveHandler(ctx, name, adapt(h))
	}
	if err != nil {
		c.ops.SetupError(fmt.Errorf("OnRemove %q: %w", name, err))
		return
	}
	c.ops.NeedRBAC("the finalizers of "+c.res.String()+"'s OnRemove handlers", c.res, "finalizers", "update")
}

// needStatus records that c's status is written (a status helper is
// registered on it): see statusWriter.
func (c *typed[T, TList]) needStatus() {
	c.ops.NeedRBAC("the status handlers of "+c.res.String(), c.res, "status", "update", "patch")
}

// adapt turns a typed handler into an engine handler.
func adapt[T runtime.Object](h ObjectHandler[T]) engine.Handler {
	return func(ctx context.Context, key string, obj runtime.Object) (runtime.Object, error) {
		var in T
		if obj != nil {
			t, ok := obj.(T)
			if !ok {
				return nil, fmt.Errorf("generic: handler for %T got %T", in, obj)
			}
			in = t
		}
		out, err := h(ctx, key, in)
		if isNil(out) {
			return nil, err
		}
		return out, err
	}
}

// isNil tells a nil T (a nil pointer) apart without reflection.
func isNil[T runtime.Object](t T) bool {
	var zero T
	return any(t) == any(zero)
}

func (c *typed[T, TList]) enqueue(key string, delay time.Duration, p engine.Priority) {
	ctrl, err := c.ops.Controller(c.res)
	if err != nil {
		c.ops.Logger().WithError(err).WithField("key", key).Error("cannot enqueue")
		return
	}
	ctrl.EnqueueWithPriority(key, delay, p)
}

func (c *typed[T, TList]) Enqueue(namespace, name string) {
	c.enqueue(key(namespace, name), 0, engine.PriorityHigh)
}

func (c *typed[T, TList]) EnqueueAfter(namespace, name string, delay time.Duration) {
	c.enqueue(key(namespace, name), delay, engine.PriorityHigh)
}

func (c *typed[T, TList]) EnqueueLow(namespace, name string, delay time.Duration) {
	c.enqueue(key(namespace, name), delay, engine.PriorityLow)
}

func key(namespace, name string) string {
	if namespace == "" {
		return name
	}
	return namespace + "/" + name
}

func (c *typed[T, TList]) Cache() Cache[T] {
	// The informer is made on the cache's first read; its list and watch
	// are needed from now on.
	c.ops.NeedCacheRBAC(c.res)
	return &informerCache[T]{
		gr:         c.res.GVR().GroupResource(),
		namespaced: c.res.Namespaced,
		informer:   func() (cache.SharedIndexInformer, error) { return c.ops.Informer(c.res) },
	}
}

func (c *typed[T, TList]) rest() (engine.ResourceClient, error) {
	c.clientOnce.Do(func() { c.client, c.clientErr = c.ops.Client(c.res) })
	return c.client, c.clientErr
}

// call runs a request that decodes into a new T.
func (c *typed[T, TList]) call(do func(client engine.ResourceClient, into T) error) (T, error) {
	return request(c, engine.NewObject, do)
}

// request runs a request of c that decodes into a new O (a T or a TList),
// which newInto makes from the scheme.
func request[O runtime.Object, T, TList runtime.Object](c *typed[T, TList], newInto func(*runtime.Scheme, engine.Resource) (runtime.Object, error), do func(client engine.ResourceClient, into O) error) (O, error) {
	var zero O
	client, err := c.rest()
	if err != nil {
		return zero, err
	}
	o, err := newInto(c.ops.Scheme(), c.res)
	if err != nil {
		return zero, err
	}
	into, err := cast[O](o)
	if err != nil {
		return zero, err
	}
	if err := do(client, into); err != nil {
		return zero, err
	}
	return into, nil
}

func objectMeta(obj runtime.Object) (namespace, name string, err error) {
	m, err := meta.Accessor(obj)
	if err != nil {
		return "", "", err
	}
	return m.GetNamespace(), m.GetName(), nil
}

func (c *typed[T, TList]) Create(ctx context.Context, obj T) (T, error) {
	return c.call(func(client engine.ResourceClient, into T) error {
		ns, _, err := objectMeta(obj)
		if err != nil {
			return err
		}
		return client.Create(ctx, ns, obj, metav1.CreateOptions{}, into)
	})
}

func (c *typed[T, TList]) update(ctx context.Context, obj T, subresource string) (T, error) {
	return c.call(func(client engine.ResourceClient, into T) error {
		ns, name, err := objectMeta(obj)
		if err != nil {
			return err
		}
		return client.Update(ctx, ns, name, subresource, obj, metav1.UpdateOptions{}, into)
	})
}

func (c *typed[T, TList]) Update(ctx context.Context, obj T) (T, error) {
	return c.update(ctx, obj, "")
}

func (c *typed[T, TList]) UpdateStatus(ctx context.Context, obj T) (T, error) {
	return c.update(ctx, obj, "status")
}

func (c *typed[T, TList]) Delete(ctx context.Context, obj T, opts metav1.DeleteOptions) error {
	m, err := meta.Accessor(obj)
	if err != nil {
		return fmt.Errorf("generic: Delete: %w", err)
	}
	switch {
	case opts.Preconditions == nil:
		uid, rv := m.GetUID(), m.GetResourceVersion()
		if uid == "" || rv == "" {
			return fmt.Errorf("generic: Delete %s: the object has no uid or resourceVersion (it was not read from the apiserver): pass the object a handler got, or use DeleteByName", c.key(m))
		}
		opts.Preconditions = &metav1.Preconditions{UID: &uid, ResourceVersion: &rv}
	case opts.Preconditions.UID == nil && opts.Preconditions.ResourceVersion == nil:
		opts.Preconditions = nil // the caller opted out
	}
	return c.DeleteByName(ctx, m.GetNamespace(), m.GetName(), opts)
}

func (c *typed[T, TList]) DeleteByName(ctx context.Context, namespace, name string, opts metav1.DeleteOptions) error {
	client, err := c.rest()
	if err != nil {
		return err
	}
	return client.Delete(ctx, namespace, name, opts)
}

func (c *typed[T, TList]) key(m metav1.Object) string {
	if m.GetNamespace() == "" {
		return c.res.GVK.Kind + " " + m.GetName()
	}
	return c.res.GVK.Kind + " " + m.GetNamespace() + "/" + m.GetName()
}

func (c *typed[T, TList]) DeleteCollection(ctx context.Context, namespace string, opts metav1.DeleteOptions, listOpts metav1.ListOptions) error {
	client, err := c.rest()
	if err != nil {
		return err
	}
	return client.DeleteCollection(ctx, namespace, opts, listOpts)
}

func (c *typed[T, TList]) Get(ctx context.Context, namespace, name string, opts metav1.GetOptions) (T, error) {
	return c.call(func(client engine.ResourceClient, into T) error {
		return client.Get(ctx, namespace, name, opts, into)
	})
}

func (c *typed[T, TList]) List(ctx context.Context, namespace string, opts metav1.ListOptions) (TList, error) {
	return request(c, engine.NewList, func(client engine.ResourceClient, list TList) error {
		return client.List(ctx, namespace, opts, list)
	})
}

func (c *typed[T, TList]) Watch(ctx context.Context, namespace string, opts metav1.ListOptions) (watch.Interface, error) {
	client, err := c.rest()
	if err != nil {
		return nil, err
	}
	return client.Watch(ctx, namespace, opts)
}

func (c *typed[T, TList]) Patch(ctx context.Context, obj T, pt types.PatchType, data []byte, subresources ...string) (T, error) {
	var zero T
	m, err := meta.Accessor(obj)
	if err != nil {
		return zero, fmt.Errorf("generic: Patch: %w", err)
	}
	if pt != types.ApplyPatchType {
		if data, err = conditionalPatch(pt, data, m.GetResourceVersion()); err != nil {
			return zero, fmt.Errorf("generic: Patch %s: %w", c.key(m), err)
		}
	}
	return c.PatchByName(ctx, m.GetNamespace(), m.GetName(), pt, data, subresources...)
}

func (c *typed[T, TList]) PatchByName(ctx context.Context, namespace, name string, pt types.PatchType, data []byte, subresources ...string) (T, error) {
	return c.call(func(client engine.ResourceClient, into T) error {
		return client.Patch(ctx, namespace, name, pt, data, metav1.PatchOptions{}, into, subresources...)
	})
}
