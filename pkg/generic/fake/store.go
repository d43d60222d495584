package fake

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/apimachinery/pkg/watch"
	clienttesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/cache"

	"github.com/rein-k8s/rein/internal/engine"
	"github.com/rein-k8s/rein/pkg/generic"
)

// kind is the store of one kind: the indexer of an informer that never
// runs, which the Env writes itself. Handlers, typed caches and clients
// all read it, so every write is visible to all of them at once.
type kind struct {
	gvk      schema.GroupVersionKind
	res      generic.Resource
	named    bool // res was given by a controller, not guessed
	informer cache.SharedIndexInformer
	status   bool               // the Go type has a Status field: a subresource
	ctrl     *engine.Controller // made on first use; guarded by Env.mu
}

func newKind(gvk schema.GroupVersionKind, example runtime.Object) *kind {
	gvr, _ := meta.UnsafeGuessKindToResource(gvk)
	_, status := statusField(example)
	return &kind{
		gvk:      gvk,
		res:      generic.Resource{GVK: gvk, Plural: gvr.Resource, Namespaced: true},
		informer: cache.NewSharedIndexInformer(notRunning{}, example, 0, cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc}),
		status:   status,
	}
}

// notRunning is the ListerWatcher of the Env's informers, which never
// run: an informer started anyway lists nothing and says why.
type notRunning struct{}

var errNotRunning = errors.New("fake: the informers of a fake.Env do not run: the Env fills their stores")

func (notRunning) List(metav1.ListOptions) (runtime.Object, error)   { return nil, errNotRunning }
func (notRunning) Watch(metav1.ListOptions) (watch.Interface, error) { return nil, errNotRunning }

func (k *kind) groupResource() schema.GroupResource { return k.res.GVR().GroupResource() }

// key is the store key of namespace/name.
func (k *kind) key(namespace, name string) (string, error) {
	if !k.res.Namespaced {
		return name, nil
	}
	if namespace == "" {
		return "", apierrors.NewBadRequest(fmt.Sprintf("fake: %s is namespaced: a namespace is required", k.res))
	}
	return namespace + "/" + name, nil
}

// existing returns the stored object (shared: never modify it) of
// namespace/name, or a NotFound error as the apiserver's.
func (k *kind) existing(namespace, name string) (runtime.Object, error) {
	key, err := k.key(namespace, name)
	if err != nil {
		return nil, err
	}
	return k.existingKey(key, name)
}

// existingKey returns the stored object (shared: never modify it) of key,
// or a NotFound error for name as the apiserver's.
func (k *kind) existingKey(key, name string) (runtime.Object, error) {
	obj, err := k.get(key)
	if err != nil {
		return nil, err
	}
	if obj == nil {
		return nil, apierrors.NewNotFound(k.groupResource(), name)
	}
	return obj, nil
}

// get returns the stored object of key (shared: never modify it), or nil.
func (k *kind) get(key string) (runtime.Object, error) {
	item, exists, err := k.informer.GetIndexer().GetByKey(key)
	if err != nil || !exists {
		return nil, err
	}
	obj, ok := item.(runtime.Object)
	if !ok {
		return nil, fmt.Errorf("fake: stored %T is not a runtime.Object", item)
	}
	return obj, nil
}

// list returns the stored objects of namespace ("" for all), shared,
// sorted by key.
func (k *kind) list(namespace string) ([]runtime.Object, error) {
	var items []any
	if namespace == "" || !k.res.Namespaced {
		items = k.informer.GetIndexer().List()
	} else {
		var err error
		if items, err = k.informer.GetIndexer().ByIndex(cache.NamespaceIndex, namespace); err != nil {
			return nil, err
		}
	}
	out := make([]runtime.Object, 0, len(items))
	for _, item := range items {
		obj, ok := item.(runtime.Object)
		if !ok {
			return nil, fmt.Errorf("fake: stored %T is not a runtime.Object", item)
		}
		out = append(out, obj)
	}
	sort.Slice(out, func(i, j int) bool { return storeKey(out[i]) < storeKey(out[j]) })
	return out, nil
}

func storeKey(obj runtime.Object) string {
	key, _ := cache.MetaNamespaceKeyFunc(obj)
	return key
}

// store makes obj the stored object of its key. Nobody may change obj
// afterwards.
func (k *kind) store(obj runtime.Object) error { return k.informer.GetIndexer().Update(obj) }

func (k *kind) remove(obj runtime.Object) error { return k.informer.GetIndexer().Delete(obj) }

// stampLocked gives obj (whose accessor is m) the next resourceVersion and
// an empty TypeMeta, as objects decoded from the apiserver have. The
// caller holds e.mu.
func (e *Env) stampLocked(obj runtime.Object, m metav1.Object) runtime.Object {
	e.version++
	m.SetResourceVersion(strconv.FormatUint(e.version, 10))
	obj.GetObjectKind().SetGroupVersionKind(schema.GroupVersionKind{})
	return obj
}

// newUIDLocked returns a UID no other object of the Env has, the same in
// every run. The caller holds e.mu.
func (e *Env) newUIDLocked() types.UID {
	e.created++
	return types.UID(fmt.Sprintf("00000000-0000-4000-8000-%012d", e.created))
}

func now() metav1.Time { return metav1.Now().Rfc3339Copy() }

// client is a engine.ResourceClient on one kind of an Env.
type client struct {
	e *Env
	k *kind
}

var _ engine.ResourceClient = (*client)(nil)

func (c *client) Get(ctx context.Context, namespace, name string, _ metav1.GetOptions, into runtime.Object) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	key, err := c.k.key(namespace, name)
	if err != nil {
		return err
	}
	obj, err := c.k.get(key)
	if err != nil {
		return err
	}
	if obj == nil {
		return apierrors.NewNotFound(c.k.groupResource(), name)
	}
	return decodeInto(obj.DeepCopyObject(), into)
}

func (c *client) List(ctx context.Context, namespace string, opts metav1.ListOptions, into runtime.Object) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.e.mu.Lock()
	items, version, err := c.selectLocked(namespace, opts)
	c.e.mu.Unlock()
	if err != nil {
		return err
	}
	for i, obj := range items {
		items[i] = obj.DeepCopyObject()
	}
	if err := meta.SetList(into, items); err != nil {
		return fmt.Errorf("fake: list into %T: %w", into, err)
	}
	if lm, err := meta.ListAccessor(into); err == nil {
		lm.SetResourceVersion(version)
	}
	return nil
}

// selectLocked returns the stored objects of namespace that opts select
// (shared), and the store's resourceVersion. The caller holds e.mu.
func (c *client) selectLocked(namespace string, opts metav1.ListOptions) ([]runtime.Object, string, error) {
	byLabel, byField, err := selectors(opts)
	if err != nil {
		return nil, "", err
	}
	stored, err := c.k.list(namespace)
	if err != nil {
		return nil, "", err
	}
	var out []runtime.Object
	for _, obj := range stored {
		m, err := meta.Accessor(obj)
		if err != nil {
			return nil, "", err
		}
		if byLabel.Matches(labels.Set(m.GetLabels())) &&
			byField.Matches(fields.Set{"metadata.name": m.GetName(), "metadata.namespace": m.GetNamespace()}) {
			out = append(out, obj)
		}
	}
	return out, strconv.FormatUint(c.e.version, 10), nil
}

func selectors(opts metav1.ListOptions) (labels.Selector, fields.Selector, error) {
	byLabel, byField := labels.Everything(), fields.Everything()
	var err error
	if opts.LabelSelector != "" {
		if byLabel, err = labels.Parse(opts.LabelSelector); err != nil {
			return nil, nil, apierrors.NewBadRequest(err.Error())
		}
	}
	if opts.FieldSelector != "" {
		if byField, err = fields.ParseSelector(opts.FieldSelector); err != nil {
			return nil, nil, apierrors.NewBadRequest(err.Error())
		}
		for _, r := range byField.Requirements() {
			if r.Field != "metadata.name" && r.Field != "metadata.namespace" {
				return nil, nil, apierrors.NewBadRequest(fmt.Sprintf("fake: field selector on %q: only metadata.name and metadata.namespace are supported", r.Field))
			}
		}
	}
	return byLabel, byField, nil
}

func (c *client) Watch(ctx context.Context, _ string, _ metav1.ListOptions) (watch.Interface, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return nil, apierrors.NewMethodNotSupported(c.k.groupResource(), "watch")
}

func (c *client) Create(ctx context.Context, namespace string, obj runtime.Object, _ metav1.CreateOptions, result runtime.Object) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.e.mu.Lock()
	out, err := c.e.createLocked(c.k, namespace, obj)
	c.e.mu.Unlock()
	if err != nil {
		return err
	}
	return decodeInto(out, result)
}

func (c *client) Update(ctx context.Context, namespace, name, subresource string, obj runtime.Object, _ metav1.UpdateOptions, result runtime.Object) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	next := obj.DeepCopyObject()
	m, err := meta.Accessor(next)
	if err != nil {
		return err
	}
	if m.GetName() != name {
		return apierrors.NewBadRequest(fmt.Sprintf("fake: the name of the object (%s) does not match the name on the URL (%s)", m.GetName(), name))
	}
	c.e.mu.Lock()
	out, err := c.e.updateLocked(c.k, namespace, name, subresource, next)
	c.e.mu.Unlock()
	if err != nil {
		return err
	}
	return decodeInto(out, result)
}

func (c *client) Patch(ctx context.Context, namespace, name string, pt types.PatchType, data []byte, _ metav1.PatchOptions, result runtime.Object, subresources ...string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.e.mu.Lock()
	var out runtime.Object
	var err error
	if pt == types.ApplyPatchType {
		out, err = c.e.serverSideApplyLocked(c.k, namespace, name, strings.Join(subresources, "/"), data)
	} else {
		out, err = c.e.patchLocked(c.k, namespace, name, strings.Join(subresources, "/"), pt, data)
	}
	c.e.mu.Unlock()
	if err != nil {
		return err
	}
	return decodeInto(out, result)
}

func (c *client) Delete(ctx context.Context, namespace, name string, opts metav1.DeleteOptions) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.e.mu.Lock()
	defer c.e.mu.Unlock()
	return c.e.deleteLocked(c.k, namespace, name, opts)
}

func (c *client) DeleteCollection(ctx context.Context, namespace string, opts metav1.DeleteOptions, listOpts metav1.ListOptions) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.e.mu.Lock()
	defer c.e.mu.Unlock()
	items, _, err := c.selectLocked(namespace, listOpts)
	if err != nil {
		return err
	}
	for _, obj := range items {
		m, err := meta.Accessor(obj)
		if err != nil {
			return err
		}
		if err := c.e.deleteLocked(c.k, m.GetNamespace(), m.GetName(), opts); err != nil && !apierrors.IsNotFound(err) {
			return err
		}
	}
	return nil
}

// createLocked stores a copy of obj as the apiserver creates it. The
// caller holds e.mu.
func (e *Env) createLocked(k *kind, namespace string, obj runtime.Object) (runtime.Object, error) {
	next := obj.DeepCopyObject()
	m, err := meta.Accessor(next)
	if err != nil {
		return nil, err
	}
	switch {
	case !k.res.Namespaced:
		m.SetNamespace("")
	case namespace == "":
		return nil, apierrors.NewBadRequest(fmt.Sprintf("fake: %s is namespaced: a namespace is required", k.res))
	case m.GetNamespace() != "" && m.GetNamespace() != namespace:
		return nil, apierrors.NewBadRequest("the namespace of the provided object does not match the namespace sent on the request")
	default:
		m.SetNamespace(namespace)
	}
	if m.GetResourceVersion() != "" {
		return nil, apierrors.NewBadRequest("resourceVersion should not be set on objects to be created")
	}
	if m.GetName() == "" && m.GetGenerateName() == "" {
		return nil, apierrors.NewInvalid(k.gvk.GroupKind(), "", field.ErrorList{
			field.Required(field.NewPath("metadata", "name"), "name or generateName is required"),
		})
	}
	m.SetUID(e.newUIDLocked())
	if m.GetName() == "" {
		m.SetName(fmt.Sprintf("%s%05d", m.GetGenerateName(), e.created))
	}
	if old, err := k.get(storeKey(next)); err != nil {
		return nil, err
	} else if old != nil {
		return nil, apierrors.NewAlreadyExists(k.groupResource(), m.GetName())
	}
	if k.status {
		clearStatus(next)
	}
	m.SetCreationTimestamp(now())
	m.SetGeneration(1)
	m.SetDeletionTimestamp(nil)
	m.SetDeletionGracePeriodSeconds(nil)
	if err := k.store(e.stampLocked(next, m)); err != nil {
		return nil, err
	}
	return next.DeepCopyObject(), nil
}

// updateLocked writes next, a private copy, over the stored object of
// namespace/name. The caller holds e.mu.
func (e *Env) updateLocked(k *kind, namespace, name, subresource string, next runtime.Object) (runtime.Object, error) {
	old, err := k.existing(namespace, name)
	if err != nil {
		return nil, err
	}
	return e.commitLocked(k, old, next, subresource)
}

// patchLocked patches the stored object of namespace/name. The caller
// holds e.mu.
func (e *Env) patchLocked(k *kind, namespace, name, subresource string, pt types.PatchType, data []byte) (runtime.Object, error) {
	old, err := k.existing(namespace, name)
	if err != nil {
		return nil, err
	}
	next, err := e.applyPatch(k, old, pt, data)
	if err != nil {
		return nil, err
	}
	return e.commitLocked(k, old, next, subresource)
}

// serverSideApplyLocked stores the applied object as if its field manager
// were the object's only one: a new object is created; an existing one
// becomes the applied object, keeping its system metadata, its status
// (when applied to the main resource) and the labels, annotations and
// finalizers nobody declared. The apiserver merges field by field and
// per manager; handler tests see the same result whenever one manager
// owns the object's content, as a Set does its children. The caller
// holds e.mu.
func (e *Env) serverSideApplyLocked(k *kind, namespace, name, subresource string, data []byte) (runtime.Object, error) {
	applied, err := e.scheme.New(k.gvk)
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(data, applied); err != nil {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("fake: apply %s %s: %v", k.gvk.Kind, name, err))
	}
	if got := applied.GetObjectKind().GroupVersionKind(); got != k.gvk {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("fake: apply %s %s: the object is a %s (apiVersion and kind must name the resource of the request)", k.gvk.Kind, name, got))
	}
	m, err := meta.Accessor(applied)
	if err != nil {
		return nil, err
	}
	if m.GetName() != name {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("fake: the name of the object (%s) does not match the name on the URL (%s)", m.GetName(), name))
	}
	old, err := k.existing(namespace, name)
	if apierrors.IsNotFound(err) && subresource == "" {
		applied.GetObjectKind().SetGroupVersionKind(schema.GroupVersionKind{})
		return e.createLocked(k, namespace, applied)
	}
	if err != nil {
		return nil, err
	}
	oldM, err := meta.Accessor(old)
	if err != nil {
		return nil, err
	}
	m.SetLabels(mergeStrings(oldM.GetLabels(), m.GetLabels()))
	m.SetAnnotations(mergeStrings(oldM.GetAnnotations(), m.GetAnnotations()))
	for _, f := range oldM.GetFinalizers() {
		if !slices.Contains(m.GetFinalizers(), f) {
			m.SetFinalizers(append(m.GetFinalizers(), f))
		}
	}
	if len(m.GetOwnerReferences()) == 0 {
		m.SetOwnerReferences(oldM.GetOwnerReferences())
	}
	if m.GetResourceVersion() == "" {
		m.SetResourceVersion(oldM.GetResourceVersion()) // unconditional
	}
	return e.commitLocked(k, old, applied, subresource)
}

// mergeStrings returns base with over's entries set; nil when both are
// empty.
func mergeStrings(base, over map[string]string) map[string]string {
	if len(base)+len(over) == 0 {
		return nil
	}
	out := make(map[string]string, len(base)+len(over))
	maps.Copy(out, base)
	maps.Copy(out, over)
	return out
}

// applyPatch returns a copy of obj patched. client-go's fake applies it,
// as for its fake clientsets, on a scratch tracker holding a copy of obj.
func (e *Env) applyPatch(k *kind, obj runtime.Object, pt types.PatchType, data []byte) (runtime.Object, error) {
	if pt == types.ApplyPatchType {
		return nil, apierrors.NewBadRequest("fake: server-side apply is not supported")
	}
	m, err := meta.Accessor(obj)
	if err != nil {
		return nil, err
	}
	gvr := k.res.GVR()
	scratch := clienttesting.NewObjectTracker(e.scheme, e.decoder)
	if err := scratch.Create(gvr, obj.DeepCopyObject(), m.GetNamespace()); err != nil {
		return nil, err
	}
	_, patched, err := clienttesting.ObjectReaction(scratch)(clienttesting.NewPatchAction(gvr, m.GetNamespace(), m.GetName(), pt, data))
	if err != nil {
		if _, ok := err.(apierrors.APIStatus); ok {
			return nil, err
		}
		return nil, apierrors.NewBadRequest(fmt.Sprintf("fake: patch: %v", err))
	}
	if patched == nil {
		return nil, apierrors.NewBadRequest("fake: patch: no object")
	}
	return patched, nil
}

// commitLocked writes next, a private copy, over old, the stored object,
// as the apiserver does: next's resourceVersion, when set, must be old's;
// system metadata stays old's; status is a subresource for kinds that
// have one; the generation grows with changes outside metadata and
// status; no finalizer may be added once the object is deleting; an
// update that changes nothing writes nothing; and a deleting object
// whose last finalizer goes is gone. The caller holds e.mu.
func (e *Env) commitLocked(k *kind, old, next runtime.Object, subresource string) (runtime.Object, error) {
	oldM, err := meta.Accessor(old)
	if err != nil {
		return nil, err
	}
	nextM, err := meta.Accessor(next)
	if err != nil {
		return nil, err
	}
	if rv := nextM.GetResourceVersion(); rv != "" && rv != oldM.GetResourceVersion() {
		return nil, apierrors.NewConflict(k.groupResource(), oldM.GetName(),
			errors.New("the object has been modified; please apply your changes to the latest version and try again"))
	}
	switch {
	case subresource == "" && k.status:
		copyStatus(next, old.DeepCopyObject())
	case subresource == "":
	case subresource == "status" && k.status:
		withStatus := old.DeepCopyObject()
		copyStatus(withStatus, next)
		next = withStatus
		if nextM, err = meta.Accessor(next); err != nil {
			return nil, err
		}
	default:
		return nil, apierrors.NewNotFound(schema.GroupResource{Group: k.res.GVK.Group, Resource: k.res.Plural + "/" + subresource}, oldM.GetName())
	}
	nextM.SetNamespace(oldM.GetNamespace())
	nextM.SetUID(oldM.GetUID())
	nextM.SetCreationTimestamp(oldM.GetCreationTimestamp())
	nextM.SetDeletionTimestamp(oldM.GetDeletionTimestamp())
	nextM.SetDeletionGracePeriodSeconds(oldM.GetDeletionGracePeriodSeconds())
	nextM.SetGeneration(oldM.GetGeneration())
	nextM.SetResourceVersion(oldM.GetResourceVersion())
	next.GetObjectKind().SetGroupVersionKind(schema.GroupVersionKind{})
	if oldM.GetDeletionTimestamp() != nil {
		for _, f := range nextM.GetFinalizers() {
			if !slices.Contains(oldM.GetFinalizers(), f) {
				return nil, apierrors.NewInvalid(k.gvk.GroupKind(), oldM.GetName(), field.ErrorList{
					field.Forbidden(field.NewPath("metadata", "finalizers"), "no new finalizers can be added if the object is being deleted, found new finalizers []string{\""+f+"\"}"),
				})
			}
		}
	}
	if subresource == "" && specChanged(old, next) {
		nextM.SetGeneration(oldM.GetGeneration() + 1)
	}
	if equality.Semantic.DeepEqual(old, next) {
		return next, nil // nothing changed: nothing written
	}
	e.stampLocked(next, nextM)
	if nextM.GetDeletionTimestamp() != nil && len(nextM.GetFinalizers()) == 0 {
		if err := k.remove(next); err != nil {
			return nil, err
		}
		return next, nil
	}
	if err := k.store(next); err != nil {
		return nil, err
	}
	return next.DeepCopyObject(), nil
}

// deleteLocked deletes the stored object of namespace/name, or starts its
// deletion when finalizers hold it. The caller holds e.mu.
func (e *Env) deleteLocked(k *kind, namespace, name string, opts metav1.DeleteOptions) error {
	old, err := k.existing(namespace, name)
	if err != nil {
		return err
	}
	m, err := meta.Accessor(old)
	if err != nil {
		return err
	}
	if p := opts.Preconditions; p != nil {
		if p.UID != nil && *p.UID != m.GetUID() {
			return apierrors.NewConflict(k.groupResource(), name,
				fmt.Errorf("precondition failed: UID in precondition: %v, UID in object meta: %v", *p.UID, m.GetUID()))
		}
		if p.ResourceVersion != nil && *p.ResourceVersion != m.GetResourceVersion() {
			return apierrors.NewConflict(k.groupResource(), name,
				fmt.Errorf("precondition failed: ResourceVersion in precondition: %v, ResourceVersion in object meta: %v", *p.ResourceVersion, m.GetResourceVersion()))
		}
	}
	if len(m.GetFinalizers()) == 0 {
		return k.remove(old)
	}
	if m.GetDeletionTimestamp() != nil {
		return nil // deleting already: its finalizers hold it
	}
	next := old.DeepCopyObject()
	nm, err := meta.Accessor(next)
	if err != nil {
		return err
	}
	deleting, zero := now(), int64(0)
	nm.SetDeletionTimestamp(&deleting)
	nm.SetDeletionGracePeriodSeconds(&zero)
	if g := nm.GetGeneration(); g > 0 {
		nm.SetGeneration(g + 1)
	}
	return k.store(e.stampLocked(next, nm))
}

// decodeInto copies obj, a private copy, into into, which must be of the
// same Go type: what decoding the apiserver's answer does.
func decodeInto(obj, into runtime.Object) error {
	src, dst := reflect.ValueOf(obj), reflect.ValueOf(into)
	if dst.Kind() != reflect.Pointer || dst.IsNil() || dst.Type() != src.Type() {
		return fmt.Errorf("fake: cannot decode %T into %T", obj, into)
	}
	dst.Elem().Set(src.Elem())
	return nil
}

// structOf returns the struct obj points to.
func structOf(obj runtime.Object) (reflect.Value, bool) {
	v := reflect.ValueOf(obj)
	if v.Kind() != reflect.Pointer || v.IsNil() || v.Elem().Kind() != reflect.Struct {
		return reflect.Value{}, false
	}
	return v.Elem(), true
}

// statusField returns obj's Status field, which kinds with a status
// subresource have.
func statusField(obj runtime.Object) (reflect.Value, bool) {
	s, ok := structOf(obj)
	if !ok {
		return reflect.Value{}, false
	}
	f, ok := s.Type().FieldByName("Status")
	if !ok || !f.IsExported() {
		return reflect.Value{}, false
	}
	return s.FieldByIndex(f.Index), true
}

// copyStatus sets dst's status to src's, which must be a private copy.
func copyStatus(dst, src runtime.Object) {
	d, ok := statusField(dst)
	s, ok2 := statusField(src)
	if ok && ok2 && d.Type() == s.Type() && d.CanSet() {
		d.Set(s)
	}
}

func clearStatus(obj runtime.Object) {
	if f, ok := statusField(obj); ok && f.CanSet() {
		f.SetZero()
	}
}

// specChanged reports whether next differs from old outside metadata and
// status: what makes the apiserver raise a custom resource's generation.
func specChanged(old, next runtime.Object) bool {
	o, ok := structOf(old)
	n, ok2 := structOf(next)
	if !ok || !ok2 || o.Type() != n.Type() {
		return true
	}
	for i := range o.NumField() {
		f := o.Type().Field(i)
		switch {
		case !f.IsExported(), f.Name == "TypeMeta", f.Name == "ObjectMeta", f.Name == "Status":
			continue
		}
		if !equality.Semantic.DeepEqual(o.Field(i).Interface(), n.Field(i).Interface()) {
			return true
		}
	}
	return false
}
