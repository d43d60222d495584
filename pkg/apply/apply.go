package apply

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/tools/cache"

	"github.com/rein-k8s/rein/internal/engine"
	"github.com/rein-k8s/rein/pkg/framework"
)

// Labels and annotations a Set puts on every child.
const (
	// OwnerLabel holds the owner's UID.
	OwnerLabel = "apply.rein.dev/owner"
	// SetLabel holds the set's name.
	SetLabel = "apply.rein.dev/set"
	// desiredAnnotation holds a short hash of the desired object last
	// applied, so that a field dropped from it counts as a change.
	desiredAnnotation = "apply.rein.dev/desired"
	// OwnerKeyAnnotation and OwnerKindAnnotation hold the owner's key
	// ("namespace/name" or "name") and group kind ("Kind.group"), so that
	// pkg/related finds the owner of any child, also one in another
	// namespace, which cannot carry an owner reference to it.
	OwnerKeyAnnotation  = "apply.rein.dev/owner-key"
	OwnerKindAnnotation = "apply.rein.dev/owner-kind"
	// fieldManagerPrefix starts the field manager of a set's applies.
	fieldManagerPrefix = "rein-apply/"
)

// ownerIndex indexes cached children by owner UID and set.
const ownerIndex = "apply.rein.dev/owner-set"

// Applier makes Sets on one factory: its caches are where Sets look, and
// its clients (fenced) what they write with.
type Applier struct {
	ops    *engine.Ops
	scheme *runtime.Scheme

	mu   sync.Mutex
	sets map[string]*Set
	// seen is, per kind, the newest resourceVersion the kind's cache has
	// shown (see seenVersion).
	seen map[schema.GroupVersionKind]*atomic.Int64
}

// New returns an Applier writing through f's clients and looking in its
// caches (on a fake.Env's factory: its in-memory store).
func New(f *framework.Factory) (*Applier, error) {
	if f == nil {
		return nil, errors.New("apply: New: the factory is nil")
	}
	ops := engine.OpsOf(f)
	return &Applier{ops: ops, scheme: ops.Scheme(), sets: map[string]*Set{},
		seen: map[schema.GroupVersionKind]*atomic.Int64{}}, nil
}

// Option configures a Set.
type Option func(*Set)

// NoForce makes a set's applies fail with a conflict, naming the other
// field manager, where another manager owns a field the set declares with
// another value, instead of taking the field over.
func NoForce() Option { return func(s *Set) { s.force = false } }

// Set is a named set of children kinds: Apply keeps an owner's children of
// those kinds as declared. Make it with Applier.Set before the factory's
// caches start.
type Set struct {
	a       *Applier
	name    string
	manager string
	force   bool
	kinds   map[schema.GroupVersionKind]*kind

	// applied remembers, per child, the desired hash and resourceVersion
	// of this process's last successful apply: until the cache catches up
	// with that version, the child counts as applied, so an Apply right
	// after another (the owner's own status write re-runs its handler)
	// sends nothing.
	// byOwner lists them per owner UID, so that pruning also finds a
	// child this process created that the cache has not shown yet.
	mu      sync.Mutex
	applied map[Ref]appliedMark
	byOwner map[types.UID]map[Ref]bool
	// swept is len(applied) after the last sweep (see remember).
	swept int
}

type appliedMark struct {
	hash  string
	rv    int64
	owner types.UID // the owner the child was applied for
	uid   types.UID // the child's
}

// remember records a successful apply of ref.
func (s *Set) remember(ref Ref, mark appliedMark) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if old, ok := s.applied[ref]; ok && old.owner != mark.owner {
		delete(s.byOwner[old.owner], ref)
	}
	s.applied[ref] = mark
	if s.byOwner[mark.owner] == nil {
		s.byOwner[mark.owner] = map[Ref]bool{}
	}
	s.byOwner[mark.owner][ref] = true
	// A mark is needed only until the cache shows its version; drop the
	// ones it does now and then (amortized: when the map has doubled), so
	// that marks of children whose owner went without Set.Delete (the
	// garbage collector removed them) do not pile up.
	if len(s.applied) > 2*s.swept+sweepFloor {
		for r, m := range s.applied {
			if k, ok := s.kinds[r.GVK]; ok && k.seen.Load() >= m.rv {
				delete(s.applied, r)
				delete(s.byOwner[m.owner], r)
				if len(s.byOwner[m.owner]) == 0 {
					delete(s.byOwner, m.owner)
				}
			}
		}
		s.swept = len(s.applied)
	}
}

// sweepFloor is how many marks a set keeps before it first sweeps.
var sweepFloor = 1024

// marks returns how many children the set remembers applying (tests).
func (s *Set) marks() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.applied)
}

// forget drops the record of ref (it was deleted).
func (s *Set) forget(ref Ref) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if mark, ok := s.applied[ref]; ok {
		delete(s.byOwner[mark.owner], ref)
		if len(s.byOwner[mark.owner]) == 0 {
			delete(s.byOwner, mark.owner)
		}
		delete(s.applied, ref)
	}
}

// uncachedChildren returns the children of kind k this process applied
// for owner that the cache has not shown yet (see seenVersion), with their
// marks.
func (s *Set) uncachedChildren(k *kind, owner types.UID) map[Ref]appliedMark {
	synced := k.seen.Load()
	s.mu.Lock()
	defer s.mu.Unlock()
	var out map[Ref]appliedMark
	for ref := range s.byOwner[owner] {
		if mark := s.applied[ref]; ref.GVK == k.res.GVK && mark.rv > synced {
			if out == nil {
				out = map[Ref]appliedMark{}
			}
			out[ref] = mark
		}
	}
	return out
}

type kind struct {
	res      engine.Resource
	informer cache.SharedIndexInformer
	client   engine.ResourceClient
	// seen is the newest resourceVersion the cache has shown: every
	// object event of that version or older has reached the cache.
	seen *atomic.Int64
}

// seenVersion returns the tracker of the newest resourceVersion the cache
// of gvk has shown, registering it on informer the first time. An event
// handler sees an object after the informer's store has it, and in order,
// so a version it has seen is in the store. (The reflector's
// LastSyncResourceVersion runs ahead of the store: it is set when an
// event is queued, before the store is updated.) The caller holds a.mu.
func (a *Applier) seenVersion(gvk schema.GroupVersionKind, informer cache.SharedIndexInformer) (*atomic.Int64, error) {
	if v, ok := a.seen[gvk]; ok {
		return v, nil
	}
	v := &atomic.Int64{}
	if a.ops.CachesAreCurrent() {
		// A store that is its own cache (pkg/generic/fake) is never behind.
		v.Store(math.MaxInt64)
		a.seen[gvk] = v
		return v, nil
	}
	note := func(obj any) {
		m, ok := obj.(metav1.Object)
		if !ok {
			return
		}
		rv, err := strconv.ParseInt(m.GetResourceVersion(), 10, 64)
		if err != nil {
			return
		}
		for {
			old := v.Load()
			if rv <= old || v.CompareAndSwap(old, rv) {
				return
			}
		}
	}
	if _, err := informer.AddEventHandler(engine.OnEveryEvent(note)); err != nil {
		return nil, err
	}
	a.seen[gvk] = v
	return v, nil
}

// Set returns the set called name, which may hold objects of kinds. It
// registers a cache of each kind on the factory, so call it when
// registering handlers, before the caches start. name becomes a label
// value and part of the field manager (rein-apply/<name>).
func (a *Applier) Set(name string, kinds []engine.Resource, opts ...Option) (*Set, error) {
	if msgs := validation.IsDNS1123Label(name); len(msgs) > 0 {
		return nil, fmt.Errorf("apply: set name %q: %s", name, strings.Join(msgs, "; "))
	}
	if len(kinds) == 0 {
		return nil, fmt.Errorf("apply: set %q declares no kinds: name every kind it may hold, so that pruning knows where to look", name)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, dup := a.sets[name]; dup {
		return nil, fmt.Errorf("apply: two sets are called %q: each needs its own name (it is their field manager)", name)
	}
	s := &Set{a: a, name: name, manager: fieldManagerPrefix + name, force: true, kinds: map[schema.GroupVersionKind]*kind{},
		applied: map[Ref]appliedMark{}, byOwner: map[types.UID]map[Ref]bool{}}
	for _, o := range opts {
		o(s)
	}
	for _, res := range kinds {
		informer, err := a.ops.Informer(res)
		if err != nil {
			return nil, fmt.Errorf("apply: set %q: %w", name, err)
		}
		client, err := a.ops.Client(res)
		if err != nil {
			return nil, fmt.Errorf("apply: set %q: %w", name, err)
		}
		if err := informer.AddIndexers(cache.Indexers{ownerIndex: indexByOwnerAndSet}); err != nil && !strings.Contains(err.Error(), "conflict") {
			return nil, fmt.Errorf("apply: set %q: cache of %s: %w", name, res, err)
		}
		seen, err := a.seenVersion(res.GVK, informer)
		if err != nil {
			return nil, fmt.Errorf("apply: set %q: cache of %s: %w", name, res, err)
		}
		s.kinds[res.GVK] = &kind{res: res, informer: informer, client: client, seen: seen}
		// Server-side apply is a patch, authorized as a create too when the
		// child does not exist yet; pruning deletes. Reads are the cache's.
		a.ops.NeedRBAC("apply set "+name+": server-side apply of children (a create when new), pruning", res, "", "create", "patch", "delete")
	}
	a.sets[name] = s
	return s, nil
}

func indexByOwnerAndSet(obj any) ([]string, error) {
	m, ok := obj.(metav1.Object)
	if !ok {
		return nil, nil
	}
	owner, set := m.GetLabels()[OwnerLabel], m.GetLabels()[SetLabel]
	if owner == "" || set == "" {
		return nil, nil
	}
	return []string{owner + "/" + set}, nil
}

// Ref names one child.
type Ref struct {
	GVK             schema.GroupVersionKind
	Namespace, Name string
}

func (r Ref) String() string {
	if r.Namespace == "" {
		return r.GVK.Kind + " " + r.Name
	}
	return r.GVK.Kind + " " + r.Namespace + "/" + r.Name
}

// Result is what Apply did, or Plan would do, with the reason for each
// change.
type Result struct {
	Created, Updated, Deleted, Unchanged []Ref
	// Why says, for each created, updated or deleted child, why.
	Why map[Ref]string
}

// Changed reports whether anything was (or would be) written.
func (r *Result) Changed() bool { return len(r.Created)+len(r.Updated)+len(r.Deleted) > 0 }

// Apply makes owner's children in this set exactly desired: it applies
// those that differ from their cached copies and deletes those no longer
// desired; it sends nothing when all match. Errors name the child; Apply
// goes on with the other children and returns every error.
func (s *Set) Apply(ctx context.Context, owner runtime.Object, desired ...runtime.Object) (*Result, error) {
	return s.run(ctx, owner, desired, false)
}

// Plan is Apply without writing: what Apply would create, update and
// delete, and why (a diff of the first differing field).
func (s *Set) Plan(ctx context.Context, owner runtime.Object, desired ...runtime.Object) (*Result, error) {
	return s.run(ctx, owner, desired, true)
}

// Delete deletes every child of owner in this set: what a generating
// handler does when its owner goes.
func (s *Set) Delete(ctx context.Context, owner runtime.Object) (*Result, error) {
	return s.run(ctx, owner, nil, false)
}

type ownerInfo struct {
	meta       metav1.Object
	gvk        schema.GroupVersionKind
	namespaced bool
}

func (s *Set) run(ctx context.Context, ownerObj runtime.Object, desired []runtime.Object, plan bool) (*Result, error) {
	owner, err := s.owner(ownerObj)
	if err != nil {
		return nil, err
	}
	res := &Result{Why: map[Ref]string{}}
	var errs []error
	wanted := map[Ref]bool{}
	for _, obj := range desired {
		if obj == nil {
			continue
		}
		child, k, err := s.complete(owner, obj)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		ref := Ref{GVK: k.res.GVK, Namespace: child.GetNamespace(), Name: child.GetName()}
		if wanted[ref] {
			errs = append(errs, fmt.Errorf("apply: set %q: %s is desired twice", s.name, ref))
			continue
		}
		wanted[ref] = true
		why, err := s.differs(k, ref, child)
		if err != nil {
			errs = append(errs, fmt.Errorf("apply: set %q: %s: %w", s.name, ref, err))
			continue
		}
		if why == "" {
			res.Unchanged = append(res.Unchanged, ref)
			continue
		}
		res.Why[ref] = why
		created := strings.HasPrefix(why, "missing")
		if !plan {
			if err := s.send(ctx, k, ref, child); err != nil {
				errs = append(errs, err)
				continue
			}
		}
		if created {
			res.Created = append(res.Created, ref)
		} else {
			res.Updated = append(res.Updated, ref)
		}
	}
	// Prune: the children of this owner and set not desired now: those
	// the cache shows, and those this process created that it does not
	// show yet.
	for _, k := range s.sortedKinds() {
		items, err := k.informer.GetIndexer().ByIndex(ownerIndex, string(owner.meta.GetUID())+"/"+s.name)
		if err != nil {
			errs = append(errs, fmt.Errorf("apply: set %q: cache of %s: %w", s.name, k.res, err))
			continue
		}
		var stale []metav1.Object
		cached := map[Ref]bool{}
		for _, item := range items {
			if m, ok := item.(metav1.Object); ok {
				ref := Ref{GVK: k.res.GVK, Namespace: m.GetNamespace(), Name: m.GetName()}
				cached[ref] = true
				if !wanted[ref] && m.GetDeletionTimestamp() == nil {
					stale = append(stale, m)
				}
			}
		}
		for ref, mark := range s.uncachedChildren(k, owner.meta.GetUID()) {
			if !cached[ref] && !wanted[ref] {
				m := &metav1.ObjectMeta{Namespace: ref.Namespace, Name: ref.Name, UID: mark.uid, ResourceVersion: strconv.FormatInt(mark.rv, 10)}
				stale = append(stale, m)
			}
		}
		slices.SortFunc(stale, func(a, b metav1.Object) int { return strings.Compare(key(a), key(b)) })
		for _, m := range stale {
			ref := Ref{GVK: k.res.GVK, Namespace: m.GetNamespace(), Name: m.GetName()}
			res.Why[ref] = "no longer desired by " + owner.gvk.Kind + " " + key(owner.meta)
			if !plan {
				if err := s.delete(ctx, k, m); err != nil {
					errs = append(errs, err)
					continue
				}
				s.forget(ref)
			}
			res.Deleted = append(res.Deleted, ref)
		}
	}
	return res, errors.Join(errs...)
}

func (s *Set) sortedKinds() []*kind {
	kinds := make([]*kind, 0, len(s.kinds))
	for _, k := range s.kinds {
		kinds = append(kinds, k)
	}
	slices.SortFunc(kinds, func(a, b *kind) int { return strings.Compare(a.res.String(), b.res.String()) })
	return kinds
}

func key(m metav1.Object) string {
	if m.GetNamespace() == "" {
		return m.GetName()
	}
	return m.GetNamespace() + "/" + m.GetName()
}

// owner reads what a Set needs of the owner.
func (s *Set) owner(obj runtime.Object) (ownerInfo, error) {
	m, ok := obj.(metav1.Object)
	if !ok || obj == nil {
		return ownerInfo{}, fmt.Errorf("apply: set %q: the owner %T has no object metadata", s.name, obj)
	}
	if m.GetUID() == "" {
		return ownerInfo{}, fmt.Errorf("apply: set %q: owner %s has no UID: pass the object as read from the apiserver (a handler's object)", s.name, key(m))
	}
	gvk, err := s.gvkOf(obj)
	if err != nil {
		return ownerInfo{}, fmt.Errorf("apply: set %q: owner %s: %w", s.name, key(m), err)
	}
	return ownerInfo{meta: m, gvk: gvk, namespaced: m.GetNamespace() != ""}, nil
}

func (s *Set) gvkOf(obj runtime.Object) (schema.GroupVersionKind, error) {
	if gvk := obj.GetObjectKind().GroupVersionKind(); !gvk.Empty() && gvk.Kind != "" {
		return gvk, nil
	}
	gvks, _, err := s.a.scheme.ObjectKinds(obj)
	if err != nil {
		return schema.GroupVersionKind{}, fmt.Errorf("kind of %T: %w (register its API in the factory's scheme)", obj, err)
	}
	return gvks[0], nil
}

// complete turns a desired object into the object to apply.
func (s *Set) complete(owner ownerInfo, obj runtime.Object) (*unstructured.Unstructured, *kind, error) {
	gvk, err := s.gvkOf(obj)
	if err != nil {
		return nil, nil, fmt.Errorf("apply: set %q: %w", s.name, err)
	}
	k, ok := s.kinds[gvk]
	if !ok {
		return nil, nil, fmt.Errorf("apply: set %q holds no %s: add its Resource to the kinds given to Applier.Set", s.name, gvk)
	}
	content, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		return nil, nil, fmt.Errorf("apply: set %q: %s: %w", s.name, gvk.Kind, err)
	}
	dropNulls(content)
	delete(content, "status") // a child's status is not declared
	if gvk.Group == "" && gvk.Kind == "Secret" {
		secretStringDataToData(content)
	}
	u := &unstructured.Unstructured{Object: content}
	u.SetGroupVersionKind(gvk)
	if u.GetName() == "" {
		return nil, nil, fmt.Errorf("apply: set %q: a desired %s has no name", s.name, gvk.Kind)
	}
	switch {
	case k.res.Namespaced && u.GetNamespace() == "" && !owner.namespaced:
		return nil, nil, fmt.Errorf("apply: set %q: %s %s needs a namespace: its owner is cluster-scoped", s.name, gvk.Kind, u.GetName())
	case k.res.Namespaced && u.GetNamespace() == "":
		u.SetNamespace(owner.meta.GetNamespace())
	case !k.res.Namespaced && u.GetNamespace() != "":
		return nil, nil, fmt.Errorf("apply: set %q: %s %s is cluster-scoped but names namespace %q", s.name, gvk.Kind, u.GetName(), u.GetNamespace())
	}
	labels := u.GetLabels()
	if labels == nil {
		labels = map[string]string{}
	}
	labels[OwnerLabel] = string(owner.meta.GetUID())
	labels[SetLabel] = s.name
	u.SetLabels(labels)
	// An owner reference where the owner can own the child: the garbage
	// collector then deletes it with its owner. Other children are found
	// by their labels.
	if !owner.namespaced || owner.meta.GetNamespace() == u.GetNamespace() {
		refs := slices.DeleteFunc(u.GetOwnerReferences(), func(r metav1.OwnerReference) bool { return r.UID == owner.meta.GetUID() })
		refs = append(refs, metav1.OwnerReference{
			APIVersion: owner.gvk.GroupVersion().String(), Kind: owner.gvk.Kind,
			Name: owner.meta.GetName(), UID: owner.meta.GetUID(), Controller: boolPtr(true),
		})
		u.SetOwnerReferences(refs)
	}
	annotations := u.GetAnnotations()
	if annotations == nil {
		annotations = map[string]string{}
	}
	delete(annotations, desiredAnnotation)
	annotations[OwnerKeyAnnotation] = key(owner.meta)
	annotations[OwnerKindAnnotation] = owner.gvk.GroupKind().String()
	u.SetAnnotations(annotations)
	hash, err := hashOf(u.Object)
	if err != nil {
		return nil, nil, fmt.Errorf("apply: set %q: %s %s: %w", s.name, gvk.Kind, u.GetName(), err)
	}
	annotations[desiredAnnotation] = hash
	u.SetAnnotations(annotations)
	return u, k, nil
}

func boolPtr(b bool) *bool { return &b }

// hashOf is a short hash of content's JSON (map keys sorted by encoding/json).
func hashOf(content map[string]any) (string, error) {
	data, err := json.Marshal(content)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:8]), nil
}

// differs says why the cached copy of child does not match it ("" when it
// does): missing, another desired hash, or the first differing field.
func (s *Set) differs(k *kind, ref Ref, child *unstructured.Unstructured) (string, error) {
	item, exists, err := k.informer.GetIndexer().GetByKey(key(child))
	if err != nil {
		return "", err
	}
	if !exists {
		if s.createNotCached(k, ref, child.GetAnnotations()[desiredAnnotation]) {
			return "", nil // created by this process; the cache has not caught up
		}
		return "missing from the cluster", nil
	}
	cachedObj, ok := item.(runtime.Object)
	if !ok {
		return "", fmt.Errorf("cached %T is not an object", item)
	}
	cached, err := runtime.DefaultUnstructuredConverter.ToUnstructured(cachedObj)
	if err != nil {
		return "", err
	}
	// Typed caches hold objects without apiVersion and kind.
	cached["apiVersion"], cached["kind"] = child.GetAPIVersion(), child.GetKind()
	cu := &unstructured.Unstructured{Object: cached}
	owner, set := cu.GetLabels()[OwnerLabel], cu.GetLabels()[SetLabel]
	switch {
	case owner != "" && owner != child.GetLabels()[OwnerLabel]:
		return "", fmt.Errorf("it exists and belongs to another owner (UID %s): two owners cannot declare one object", owner)
	case owner != "" && set != "" && set != s.name:
		return "", fmt.Errorf("set %q of the same owner declares it too: one object belongs to one set", set)
	case owner == "" && !controlledBy(cu, child.GetLabels()[OwnerLabel]):
		// Not a child of any set: something else made it (a user, another
		// controller). Taking it over would silently rewrite it.
		return "", fmt.Errorf("it exists and is not a child of this owner (no %s label, no controller reference to it): delete it, rename the child, or label it %s=<owner UID> to hand it over", OwnerLabel, OwnerLabel)
	}
	want := child.GetAnnotations()[desiredAnnotation]
	if got := cu.GetAnnotations()[desiredAnnotation]; got != want {
		if s.cacheBehind(ref, want, cu.GetResourceVersion()) {
			return "", nil // applied by this process; the cache has not caught up
		}
		return fmt.Sprintf("the desired object changed (hash %s, applied %s)", want, orNone(got)), nil
	}
	if path, ok := contains(cached, child.Object, ""); !ok {
		return "drifted at " + path, nil
	}
	return "", nil
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// cacheBehind reports whether this process applied hash to ref at a
// resourceVersion newer than the cached one (resourceVersions are etcd
// revisions; one that is not a number never counts as behind).
func (s *Set) cacheBehind(ref Ref, hash, cachedRV string) bool {
	s.mu.Lock()
	mark, ok := s.applied[ref]
	s.mu.Unlock()
	cached, err := strconv.ParseInt(cachedRV, 10, 64)
	return ok && err == nil && mark.hash == hash && cached < mark.rv
}

// createNotCached reports whether this process applied hash to ref at a
// resourceVersion the cache has not reached yet (see seenVersion), so that an absent child is one the cache has
// not seen created, not one deleted since: after the cache has seen the
// creation, an absent child was deleted and is missing.
func (s *Set) createNotCached(k *kind, ref Ref, hash string) bool {
	s.mu.Lock()
	mark, ok := s.applied[ref]
	s.mu.Unlock()
	if !ok || mark.hash != hash {
		return false
	}
	return k.seen.Load() < mark.rv
}

// send applies child with the set's field manager.
func (s *Set) send(ctx context.Context, k *kind, ref Ref, child *unstructured.Unstructured) error {
	data, err := json.Marshal(child.Object)
	if err != nil {
		return fmt.Errorf("apply: set %q: %s %s: %w", s.name, k.res.GVK.Kind, key(child), err)
	}
	force := s.force
	out, err := s.a.scheme.New(k.res.GVK)
	if err != nil {
		return fmt.Errorf("apply: set %q: %s %s: %w", s.name, k.res.GVK.Kind, key(child), err)
	}
	err = k.client.Patch(ctx, s.namespaceOf(k, child), child.GetName(), types.ApplyPatchType, data,
		metav1.PatchOptions{FieldManager: s.manager, Force: &force}, out)
	switch {
	case err == nil:
		m, merr := meta.Accessor(out)
		if merr != nil {
			return fmt.Errorf("apply: set %q: %s %s: %w", s.name, k.res.GVK.Kind, key(child), merr)
		}
		if rv, perr := strconv.ParseInt(m.GetResourceVersion(), 10, 64); perr == nil {
			s.remember(ref, appliedMark{hash: child.GetAnnotations()[desiredAnnotation], rv: rv,
				owner: types.UID(child.GetLabels()[OwnerLabel]), uid: m.GetUID()})
		}
		return nil
	case apierrors.IsConflict(err):
		return fmt.Errorf("apply: set %q: %s %s: another field manager owns a field the set declares (field manager %s, force off): %w", s.name, k.res.GVK.Kind, key(child), s.manager, err)
	default:
		return fmt.Errorf("apply: set %q: %s %s: %w", s.name, k.res.GVK.Kind, key(child), err)
	}
}

// delete deletes a child that is no longer desired, on condition that it
// is still the object the cache showed.
func (s *Set) delete(ctx context.Context, k *kind, m metav1.Object) error {
	uid, rv := m.GetUID(), m.GetResourceVersion()
	policy := metav1.DeletePropagationBackground
	err := k.client.Delete(ctx, s.namespaceOf(k, m), m.GetName(), metav1.DeleteOptions{
		Preconditions: &metav1.Preconditions{UID: &uid, ResourceVersion: &rv}, PropagationPolicy: &policy,
	})
	switch {
	case err == nil, apierrors.IsNotFound(err):
		return nil
	default:
		return fmt.Errorf("apply: set %q: prune %s %s: %w", s.name, k.res.GVK.Kind, key(m), err)
	}
}

// namespaceOf is the namespace a client call about m names: none for a
// cluster-scoped kind.
func (s *Set) namespaceOf(k *kind, m metav1.Object) string {
	if k.res.Namespaced {
		return m.GetNamespace()
	}
	return ""
}

// secretStringDataToData moves a Secret's stringData into data, as the
// apiserver does when it stores the Secret: stringData is write-only, so
// a declared stringData would never be found in the cache and the child
// would be applied again on every pass.
func secretStringDataToData(content map[string]any) {
	stringData, ok := content["stringData"].(map[string]any)
	if !ok {
		return
	}
	delete(content, "stringData")
	data, _ := content["data"].(map[string]any)
	if data == nil {
		data = map[string]any{}
	}
	for k, v := range stringData {
		if str, ok := v.(string); ok {
			data[k] = base64.StdEncoding.EncodeToString([]byte(str))
		}
	}
	content["data"] = data
}

// controlledBy reports whether obj's controller reference names ownerUID:
// an object the owner's controller made before it used a Set is adopted.
func controlledBy(obj metav1.Object, ownerUID string) bool {
	ref := metav1.GetControllerOfNoCopy(obj)
	return ref != nil && string(ref.UID) == ownerUID
}
