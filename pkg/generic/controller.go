package generic

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/sirupsen/logrus"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/tools/cache"

	"github.com/rein-k8s/rein/pkg/framework"
)

// ErrSkip, returned by a handler, ends its work on this key quietly: it is
// neither an error nor retried.
var ErrSkip = framework.ErrSkip

// RequeueAfter, returned by a handler as its error, has the key processed
// again after d without counting as a failure.
func RequeueAfter(d time.Duration) error { return framework.RequeueAfter(d) }

// ObjectHandler handles one key. obj is a private copy of the cached object
// (change it freely), or nil when the object was deleted. Return the object
// the next handler should see (the answer of an Update), or nil to pass obj
// on unchanged. An error retries the key with backoff.
//
// ctx ends the moment this replica's leadership term does (a lost lease: at
// once; a graceful stop: after the drain grace): pass it to every call.
// Logger(ctx) logs with the controller, handler and key.
type ObjectHandler[T runtime.Object] func(ctx context.Context, key string, obj T) (T, error)

// Logger returns the logger of a handler's context, with the controller,
// handler and key fields (framework.Logger).
func Logger(ctx context.Context) *logrus.Entry { return framework.Logger(ctx) }

// Meta is what every typed controller exposes about itself.
type Meta interface {
	// Informer is the kind's shared informer (on a fake.Env, one that
	// never runs: its store is the fake's, its event handlers never fire).
	Informer() cache.SharedIndexInformer
	// GroupVersionKind is the kind served.
	GroupVersionKind() schema.GroupVersionKind
	// Engine is the untyped shared controller, for generic handlers.
	Engine() (*framework.Controller, error)
}

// Client reads and writes objects of a namespaced kind. Every call takes
// the caller's context.
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

// Controller is the typed controller of a namespaced kind: its handler
// chain, its queue, its cache and its client.
type Controller[T runtime.Object, TList runtime.Object] interface {
	Meta
	Client[T, TList]

	// OnChange appends h to the handler chain until ctx ends. Handlers run
	// in registration order on the same key. framework.IgnoreStatus keeps
	// h from re-running on status-only changes.
	OnChange(ctx context.Context, name string, h ObjectHandler[T], opts ...framework.HandlerOption)
	// OnRemove runs h when an object is being deleted, holding the
	// deletion with a finalizer named after name while h is registered
	// (see framework.FinalizerName). The finalizer is removed when h
	// succeeds. Finalizers come first: every live object carries the
	// finalizers of all OnRemove handlers before any handler of the
	// chain runs on it, whatever the registration order (see
	// framework.Controller.AddRemoveHandler, also for what change
	// handlers see of an object deleted before its finalizer was added).
	OnRemove(ctx context.Context, name string, h ObjectHandler[T])
	// Enqueue queues namespace/name for the handler chain.
	Enqueue(namespace, name string)
	// EnqueueAfter queues namespace/name after delay.
	EnqueueAfter(namespace, name string, delay time.Duration)
	// Cache reads from the shared informer cache.
	Cache() Cache[T]
}

// NonNamespacedClient reads and writes objects of a cluster-scoped kind;
// its writes are conditional by default, as Client's.
type NonNamespacedClient[T runtime.Object, TList runtime.Object] interface {
	Create(ctx context.Context, obj T) (T, error)
	Update(ctx context.Context, obj T) (T, error)
	UpdateStatus(ctx context.Context, obj T) (T, error)
	Delete(ctx context.Context, obj T, opts metav1.DeleteOptions) error
	DeleteByName(ctx context.Context, name string, opts metav1.DeleteOptions) error
	DeleteCollection(ctx context.Context, opts metav1.DeleteOptions, listOpts metav1.ListOptions) error
	Get(ctx context.Context, name string, opts metav1.GetOptions) (T, error)
	List(ctx context.Context, opts metav1.ListOptions) (TList, error)
	Watch(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error)
	Patch(ctx context.Context, obj T, pt types.PatchType, data []byte, subresources ...string) (T, error)
	PatchByName(ctx context.Context, name string, pt types.PatchType, data []byte, subresources ...string) (T, error)
}

// NonNamespacedController is Controller for cluster-scoped kinds.
type NonNamespacedController[T runtime.Object, TList runtime.Object] interface {
	Meta
	NonNamespacedClient[T, TList]

	OnChange(ctx context.Context, name string, h ObjectHandler[T], opts ...framework.HandlerOption)
	OnRemove(ctx context.Context, name string, h ObjectHandler[T])
	Enqueue(name string)
	EnqueueAfter(name string, delay time.Duration)
	Cache() NonNamespacedCache[T]
}

// NewController returns the typed controller of res on factory. T and TList
// must be the Go types the factory's scheme registers for res.GVK and its
// list kind. Nothing starts here: the informer and the shared controller are
// made on first use, and a mistake (a kind the scheme does not know) is
// reported by the factory's StartCaches or by the call that needed it.
func NewController[T runtime.Object, TList runtime.Object](factory *framework.Factory, res framework.Resource) Controller[T, TList] {
	return NewControllerOn[T, TList](factoryBackend{factory}, res)
}

// NewNonNamespacedController returns the typed controller of the
// cluster-scoped kind res.
func NewNonNamespacedController[T runtime.Object, TList runtime.Object](factory *framework.Factory, res framework.Resource) NonNamespacedController[T, TList] {
	return NewNonNamespacedControllerOn[T, TList](factoryBackend{factory}, res)
}

// Backend is what typed controllers run on: the shared controller, client
// and informer of each kind, and the scheme. NewController runs them on a
// framework.Factory; pkg/generic/fake has an in-memory Backend, so that
// handlers are unit-tested through the same registration code as in main.
type Backend interface {
	// Controller returns the shared controller of res, made on first use.
	Controller(res framework.Resource) (*framework.Controller, error)
	// Client returns a client of res.
	Client(res framework.Resource) (framework.ResourceClient, error)
	// Informer returns the shared informer of res, made on first use;
	// Cache reads its store.
	Informer(res framework.Resource) (cache.SharedIndexInformer, error)
	// Scheme makes the objects of the kinds served.
	Scheme() *runtime.Scheme
	// SetupError records a registration mistake found where no error can
	// be returned (see framework.Factory.SetupError).
	SetupError(err error)
	// Logger logs what a typed controller cannot return.
	Logger() *logrus.Entry
}

// NewControllerOn returns the typed controller of res on backend (see
// NewController).
func NewControllerOn[T runtime.Object, TList runtime.Object](backend Backend, res framework.Resource) Controller[T, TList] {
	return newTyped[T, TList](backend, res)
}

// NewNonNamespacedControllerOn returns the typed controller of the
// cluster-scoped kind res on backend.
func NewNonNamespacedControllerOn[T runtime.Object, TList runtime.Object](backend Backend, res framework.Resource) NonNamespacedController[T, TList] {
	return &nonNamespaced[T, TList]{typed: newTyped[T, TList](backend, res)}
}

// factoryBackend is the Backend of a framework.Factory.
type factoryBackend struct{ *framework.Factory }

func (b factoryBackend) Client(res framework.Resource) (framework.ResourceClient, error) {
	client, err := b.Clients().ForResource(res)
	if err != nil {
		return nil, err // not a non-nil interface holding a nil *Client
	}
	return client, nil
}

func (b factoryBackend) Informer(res framework.Resource) (cache.SharedIndexInformer, error) {
	return b.Caches().ForResource(res)
}

func (b factoryBackend) Scheme() *runtime.Scheme { return b.Clients().Scheme() }

type typed[T runtime.Object, TList runtime.Object] struct {
	backend Backend
	res     framework.Resource

	clientOnce sync.Once
	client     framework.ResourceClient
	clientErr  error
}

func newTyped[T runtime.Object, TList runtime.Object](backend Backend, res framework.Resource) *typed[T, TList] {
	checkForm[T, TList](backend, res)
	return &typed[T, TList]{backend: backend, res: res}
}

func (c *typed[T, TList]) GroupVersionKind() schema.GroupVersionKind { return c.res.GVK }

func (c *typed[T, TList]) Engine() (*framework.Controller, error) {
	return c.backend.Controller(c.res)
}

// Informer returns the kind's shared informer, or nil when the scheme does
// not know the kind (StartCaches reports that).
func (c *typed[T, TList]) Informer() cache.SharedIndexInformer {
	inf, err := c.backend.Informer(c.res)
	if err != nil {
		c.backend.SetupError(err)
		return nil
	}
	return inf
}

func (c *typed[T, TList]) OnChange(ctx context.Context, name string, h ObjectHandler[T], opts ...framework.HandlerOption) {
	ctrl, err := c.backend.Controller(c.res)
	if err != nil {
		c.backend.SetupError(fmt.Errorf("OnChange %q: %w", name, err))
		return
	}
	ctrl.AddHandler(ctx, name, adapt(h), opts...)
}

func (c *typed[T, TList]) OnRemove(ctx context.Context, name string, h ObjectHandler[T]) {
	ctrl, err := c.backend.Controller(c.res)
	if err == nil {
		err = ctrl.AddRemoveHandler(ctx, name, adapt(h))
	}
	if err != nil {
		c.backend.SetupError(fmt.Errorf("OnRemove %q: %w", name, err))
	}
}

// adapt turns a typed handler into an engine handler.
func adapt[T runtime.Object](h ObjectHandler[T]) framework.Handler {
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

func (c *typed[T, TList]) enqueue(key string, delay time.Duration) {
	ctrl, err := c.backend.Controller(c.res)
	if err != nil {
		c.backend.Logger().WithError(err).WithField("key", key).Error("cannot enqueue")
		return
	}
	ctrl.EnqueueAfter(key, delay)
}

func (c *typed[T, TList]) Enqueue(namespace, name string) { c.enqueue(key(namespace, name), 0) }

func (c *typed[T, TList]) EnqueueAfter(namespace, name string, delay time.Duration) {
	c.enqueue(key(namespace, name), delay)
}

func key(namespace, name string) string {
	if namespace == "" {
		return name
	}
	return namespace + "/" + name
}

func (c *typed[T, TList]) Cache() Cache[T] {
	return &informerCache[T]{
		gr:       c.res.GVR().GroupResource(),
		informer: func() (cache.SharedIndexInformer, error) { return c.backend.Informer(c.res) },
	}
}

func (c *typed[T, TList]) rest() (framework.ResourceClient, error) {
	c.clientOnce.Do(func() { c.client, c.clientErr = c.backend.Client(c.res) })
	return c.client, c.clientErr
}

func (c *typed[T, TList]) newObject() (T, error) {
	o, err := framework.NewObject(c.backend.Scheme(), c.res)
	if err != nil {
		var zero T
		return zero, err
	}
	return cast[T](o)
}

func (c *typed[T, TList]) newList() (TList, error) {
	o, err := framework.NewList(c.backend.Scheme(), c.res)
	if err != nil {
		var zero TList
		return zero, err
	}
	return cast[TList](o)
}

// call runs a request that decodes into a new T.
func (c *typed[T, TList]) call(do func(client framework.ResourceClient, into T) error) (T, error) {
	var zero T
	client, err := c.rest()
	if err != nil {
		return zero, err
	}
	into, err := c.newObject()
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
	return c.call(func(client framework.ResourceClient, into T) error {
		ns, _, err := objectMeta(obj)
		if err != nil {
			return err
		}
		return client.Create(ctx, ns, obj, metav1.CreateOptions{}, into)
	})
}

func (c *typed[T, TList]) update(ctx context.Context, obj T, subresource string) (T, error) {
	return c.call(func(client framework.ResourceClient, into T) error {
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
	return c.call(func(client framework.ResourceClient, into T) error {
		return client.Get(ctx, namespace, name, opts, into)
	})
}

func (c *typed[T, TList]) List(ctx context.Context, namespace string, opts metav1.ListOptions) (TList, error) {
	var zero TList
	client, err := c.rest()
	if err != nil {
		return zero, err
	}
	list, err := c.newList()
	if err != nil {
		return zero, err
	}
	if err := client.List(ctx, namespace, opts, list); err != nil {
		return zero, err
	}
	return list, nil
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
	return c.call(func(client framework.ResourceClient, into T) error {
		return client.Patch(ctx, namespace, name, pt, data, metav1.PatchOptions{}, into, subresources...)
	})
}

// nonNamespaced drops the namespace from every method.
type nonNamespaced[T runtime.Object, TList runtime.Object] struct {
	*typed[T, TList]
}

func (c *nonNamespaced[T, TList]) Enqueue(name string) { c.typed.Enqueue("", name) }
func (c *nonNamespaced[T, TList]) EnqueueAfter(name string, delay time.Duration) {
	c.typed.EnqueueAfter("", name, delay)
}
func (c *nonNamespaced[T, TList]) Cache() NonNamespacedCache[T] {
	return nonNamespacedCache[T]{c: c.typed.Cache().(*informerCache[T])}
}
func (c *nonNamespaced[T, TList]) DeleteByName(ctx context.Context, name string, opts metav1.DeleteOptions) error {
	return c.typed.DeleteByName(ctx, "", name, opts)
}
func (c *nonNamespaced[T, TList]) DeleteCollection(ctx context.Context, opts metav1.DeleteOptions, listOpts metav1.ListOptions) error {
	return c.typed.DeleteCollection(ctx, "", opts, listOpts)
}
func (c *nonNamespaced[T, TList]) Get(ctx context.Context, name string, opts metav1.GetOptions) (T, error) {
	return c.typed.Get(ctx, "", name, opts)
}
func (c *nonNamespaced[T, TList]) List(ctx context.Context, opts metav1.ListOptions) (TList, error) {
	return c.typed.List(ctx, "", opts)
}
func (c *nonNamespaced[T, TList]) Watch(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error) {
	return c.typed.Watch(ctx, "", opts)
}
func (c *nonNamespaced[T, TList]) PatchByName(ctx context.Context, name string, pt types.PatchType, data []byte, subresources ...string) (T, error) {
	return c.typed.PatchByName(ctx, "", name, pt, data, subresources...)
}
