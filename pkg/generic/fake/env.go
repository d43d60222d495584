package fake

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/sirupsen/logrus"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/client-go/tools/cache"

	"github.com/rein-k8s/rein/internal/engine"
	"github.com/rein-k8s/rein/pkg/fence"
	"github.com/rein-k8s/rein/pkg/framework"
	"github.com/rein-k8s/rein/pkg/generic"
)

// Env is an in-memory object store with the controllers that run on it.
// Make one with New.
type Env struct {
	scheme  *runtime.Scheme
	decoder runtime.Decoder
	log     *logrus.Entry
	token   fence.Token
	factory *framework.Factory // typed controllers and sets run on it

	// mu guards everything below. Store writes hold it; it is never held
	// while a handler runs.
	mu       sync.Mutex
	kinds    map[schema.GroupVersionKind]*kind
	version  uint64 // the last resourceVersion given
	created  uint64 // objects created, for UIDs and generated names
	enqueued []Request
}

// Request is a key queued for a controller: by Enqueue or EnqueueAfter
// (After is the delay, 0 for Enqueue), or by a handler's RequeueAfter.
type Request struct {
	GVK   schema.GroupVersionKind
	Key   string
	After time.Duration
}

// New returns an Env for the kinds of scheme, holding copies of objects
// as they are (see Add).
func New(scheme *runtime.Scheme, objects ...runtime.Object) (*Env, error) {
	if scheme == nil {
		return nil, errors.New("fake: scheme is nil")
	}
	e := &Env{
		scheme:  scheme,
		decoder: serializer.NewCodecFactory(scheme).UniversalDecoder(),
		log:     logrus.NewEntry(logrus.StandardLogger()),
		token:   fence.Token{Namespace: "fake", Lease: "fake", Term: 1},
		kinds:   map[schema.GroupVersionKind]*kind{},
	}
	e.factory = engine.NewFactoryOn(scheme, e.log, backend{e})
	if err := e.Add(objects...); err != nil {
		return nil, err
	}
	return e, nil
}

// Factory is the factory whose kinds env serves: make typed controllers on
// it as main does on its own (generic.NewController, a generated factory's
// accessors, apply.New for sets of children). Starting it (caches,
// workers, pkg/start) fails: nothing runs until Reconcile is called.
func (e *Env) Factory() *framework.Factory { return e.factory }

// Token is the fencing token of every handler's context.
func (e *Env) Token() fence.Token { return e.token }

// Reconcile runs the handler chain of the controller of gvk once on key
// ("namespace/name", or "name" for a cluster-scoped kind), with ctx
// carrying env's token, and returns the failures of its handlers joined,
// or nil. A delay asked with RequeueAfter is recorded (see Enqueued), and
// nothing is retried. It fails at once with the registration mistakes
// made so far (a handler name that makes no valid finalizer, a kind the
// scheme does not know), as a replica does when it starts.
func (e *Env) Reconcile(ctx context.Context, gvk schema.GroupVersionKind, key string) error {
	setupErr := engine.OpsOf(e.factory).SetupErrors()
	e.mu.Lock()
	var ctrl *engine.Controller
	if k := e.kinds[gvk]; k != nil {
		ctrl = k.ctrl
	}
	e.mu.Unlock()
	if setupErr != nil {
		return fmt.Errorf("fake: handler registration: %w", setupErr)
	}
	if ctrl == nil {
		return fmt.Errorf("fake: no controller of %s: make it on env.Factory() and register its handlers first", gvk)
	}
	after, err := ctrl.Process(fence.WithHold(ctx, fence.Fixed(e.token)), key)
	if err == nil && after > 0 {
		e.record(gvk, key, after)
	}
	return err
}

// Enqueued returns the keys queued so far, in order (see Request).
func (e *Env) Enqueued() []Request {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.enqueued)
}

// ClearEnqueued forgets the keys queued so far.
func (e *Env) ClearEnqueued() {
	e.mu.Lock()
	e.enqueued = nil
	e.mu.Unlock()
}

func (e *Env) record(gvk schema.GroupVersionKind, key string, after time.Duration) {
	e.mu.Lock()
	e.enqueued = append(e.enqueued, Request{GVK: gvk, Key: key, After: after})
	e.mu.Unlock()
}

// Add stores copies of objects as they are, status, finalizers and
// deletionTimestamp included, replacing any object of the same kind and
// key: the state a test starts from. The store gives each a new
// resourceVersion, and a uid, creationTimestamp and generation when it
// has none. The kind of an object is its TypeMeta's, or the one the
// scheme registers for its Go type.
func (e *Env) Add(objects ...runtime.Object) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, obj := range objects {
		if err := e.addLocked(obj); err != nil {
			return err
		}
	}
	return nil
}

// Get returns a copy of the stored object of gvk under key
// ("namespace/name" or "name"), or a NotFound API error.
func (e *Env) Get(gvk schema.GroupVersionKind, key string) (runtime.Object, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	k, err := e.kindLocked(gvk, nil)
	if err != nil {
		return nil, err
	}
	_, name, _ := cache.SplitMetaNamespaceKey(key)
	obj, err := k.existingKey(key, name)
	if err != nil {
		return nil, err
	}
	return obj.DeepCopyObject(), nil
}

// List returns copies of the stored objects of gvk in namespace ("" for
// all), sorted by key.
func (e *Env) List(gvk schema.GroupVersionKind, namespace string) ([]runtime.Object, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	k, err := e.kindLocked(gvk, nil)
	if err != nil {
		return nil, err
	}
	stored, err := k.list(namespace)
	if err != nil {
		return nil, err
	}
	out := make([]runtime.Object, len(stored))
	for i, obj := range stored {
		out[i] = obj.DeepCopyObject()
	}
	return out, nil
}

// backend serves env's kinds to its factory (engine.Backend).
type backend struct{ e *Env }

func (b backend) Controller(res generic.Resource) (*engine.Controller, error) {
	e := b.e
	e.mu.Lock()
	defer e.mu.Unlock()
	k, err := e.kindLocked(res.GVK, &res)
	if err != nil {
		return nil, err
	}
	if k.ctrl == nil {
		gvk := res.GVK
		k.ctrl, err = engine.NewManualController(engine.ManualConfig{
			Resource:  k.res,
			Client:    &client{e: e, k: k},
			Informer:  k.informer,
			NewObject: func() (runtime.Object, error) { return e.scheme.New(gvk) },
			Enqueue:   func(key string, after time.Duration) { e.record(gvk, key, after) },
			Logger:    e.log,
		})
		if err != nil {
			return nil, err
		}
	}
	return k.ctrl, nil
}

func (b backend) Client(res generic.Resource) (engine.ResourceClient, error) {
	k, err := b.e.storeOf(res.GVK, &res)
	if err != nil {
		return nil, err
	}
	return &client{e: b.e, k: k}, nil
}

func (b backend) Informer(res generic.Resource) (cache.SharedIndexInformer, error) {
	k, err := b.e.storeOf(res.GVK, &res)
	if err != nil {
		return nil, err
	}
	return k.informer, nil
}

// storeOf is kindLocked for a caller that does not hold e.mu.
func (e *Env) storeOf(gvk schema.GroupVersionKind, res *generic.Resource) (*kind, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.kindLocked(gvk, res)
}

// kindLocked returns the store of gvk, made on first use. res names the
// kind as a controller was given it; without one (an object given to Add,
// an Env.Get), the plural is guessed until a controller names it. The
// caller holds e.mu.
func (e *Env) kindLocked(gvk schema.GroupVersionKind, res *generic.Resource) (*kind, error) {
	if res != nil {
		if res.GVK.Kind == "" || res.GVK.Version == "" || res.Plural == "" {
			return nil, fmt.Errorf("fake: resource %+v: kind, version and plural are all required", *res)
		}
		if res.Form != engine.Typed {
			return nil, fmt.Errorf("fake: %s: the fake serves typed resources only; metadata-only and dynamic controllers are not modelled (test them against pkg/testenv)", *res)
		}
		if !e.scheme.Recognizes(gvk.GroupVersion().WithKind(gvk.Kind + "List")) {
			return nil, fmt.Errorf("fake: list kind %sList in %s is not registered in the scheme", gvk.Kind, gvk.GroupVersion())
		}
	}
	k, ok := e.kinds[gvk]
	if !ok {
		example, err := e.scheme.New(gvk)
		if err != nil {
			return nil, fmt.Errorf("fake: kind %s in %s is not registered in the scheme: %w", gvk.Kind, gvk.GroupVersion(), err)
		}
		k = newKind(gvk, example)
		e.kinds[gvk] = k
	}
	if res != nil && !k.named {
		k.res, k.named = *res, true
	}
	return k, nil
}

// addLocked stores a copy of obj as it is. The caller holds e.mu.
func (e *Env) addLocked(obj runtime.Object) error {
	if obj == nil {
		return errors.New("fake: Add: nil object")
	}
	gvk, err := e.kindOf(obj)
	if err != nil {
		return err
	}
	k, err := e.kindLocked(gvk, nil)
	if err != nil {
		return err
	}
	next := obj.DeepCopyObject()
	m, err := meta.Accessor(next)
	if err != nil {
		return fmt.Errorf("fake: Add %T: %w", obj, err)
	}
	switch {
	case m.GetName() == "":
		return fmt.Errorf("fake: Add %s: the object has no name", gvk.Kind)
	case m.GetDeletionTimestamp() != nil && len(m.GetFinalizers()) == 0:
		return fmt.Errorf("fake: Add %s %s: an object being deleted with no finalizer would be gone", gvk.Kind, m.GetName())
	}
	if !k.named && m.GetNamespace() == "" {
		k.res.Namespaced = false
	}
	if m.GetUID() == "" {
		m.SetUID(e.newUIDLocked())
	}
	if created := m.GetCreationTimestamp(); created.IsZero() {
		m.SetCreationTimestamp(now())
	}
	if m.GetGeneration() == 0 {
		m.SetGeneration(1)
	}
	return k.store(e.stampLocked(next, m))
}

// kindOf returns the kind of obj: its TypeMeta's when the scheme has it
// for obj's Go type, else the scheme's first for the type.
func (e *Env) kindOf(obj runtime.Object) (schema.GroupVersionKind, error) {
	gvks, _, err := e.scheme.ObjectKinds(obj)
	if err != nil {
		return schema.GroupVersionKind{}, fmt.Errorf("fake: %w", err)
	}
	if want := obj.GetObjectKind().GroupVersionKind(); !want.Empty() && slices.Contains(gvks, want) {
		return want, nil
	}
	return gvks[0], nil
}
