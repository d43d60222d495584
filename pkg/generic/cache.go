package generic

import (
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/tools/cache"
)

// Cache reads objects of one kind from the shared informer cache. Objects
// it returns are shared with every other reader: never modify one; call
// DeepCopy first. For a cluster-scoped kind, namespace is always "".
type Cache[T runtime.Object] interface {
	// Get returns the cached object, or a NotFound API error.
	Get(namespace, name string) (T, error)
	// List returns the cached objects of namespace ("" for all) that
	// selector matches.
	List(namespace string, selector labels.Selector) ([]T, error)
	// AddIndexer adds the index name, computed by indexer, to the kind's
	// shared informer. Its values are scoped by namespace: indexer returns
	// plain values (say, an owner's name) and each is stored with the
	// namespace of the object it was computed from, so a value of one
	// namespace never finds an object of another: same-named owners in two
	// namespaces have separate children. Look objects up with
	// GetByIndex(namespace, name, value).
	//
	// The informer's own index (Informer().GetIndexer()) holds
	// namespace + "/" + value: the key of the object the value names when
	// it names one in the object's namespace, which is what
	// related.Referencing looks up.
	AddIndexer(name string, indexer Indexer[T]) error
	// GetByIndex returns the objects of namespace whose index name (added
	// by AddIndexer) has value. Only objects of namespace are returned.
	// For a namespaced kind namespace is required: "" (metav1.NamespaceAll)
	// is an error, not every namespace; GetByIndexAllNamespaces is the
	// lookup that spans namespaces. For a cluster-scoped kind namespace is
	// "" (its values are stored as indexer returns them).
	GetByIndex(namespace, name, value string) ([]T, error)
	// GetByIndexAllNamespaces returns the objects of EVERY namespace whose
	// index name has value: one GetByIndex per namespace the cache holds
	// objects of. Use it only when objects of other namespaces are meant
	// (Pods by node name, say); an owner's children are found with
	// GetByIndex in the owner's namespace. It needs the informer's
	// namespace index (cache.NamespaceIndex), which every informer of
	// framework and of package fake has.
	GetByIndexAllNamespaces(name, value string) ([]T, error)
}

// Indexer computes the index values of one object. A namespaced kind's
// values are scoped by the object's namespace (see Cache.AddIndexer).
type Indexer[T runtime.Object] func(obj T) ([]string, error)

type informerCache[T runtime.Object] struct {
	gr         schema.GroupResource
	namespaced bool
	informer   func() (cache.SharedIndexInformer, error)
}

func (c *informerCache[T]) Get(namespace, name string) (T, error) {
	var zero T
	inf, err := c.informer()
	if err != nil {
		return zero, err
	}
	key := name
	if namespace != "" {
		key = namespace + "/" + name
	}
	item, exists, err := inf.GetIndexer().GetByKey(key)
	if err != nil {
		return zero, err
	}
	if !exists {
		return zero, apierrors.NewNotFound(c.gr, name)
	}
	return cast[T](item)
}

func (c *informerCache[T]) List(namespace string, selector labels.Selector) ([]T, error) {
	inf, err := c.informer()
	if err != nil {
		return nil, err
	}
	if selector == nil {
		selector = labels.Everything()
	}
	var out []T
	var castErr error
	err = cache.ListAllByNamespace(inf.GetIndexer(), namespace, selector, func(item any) {
		t, err := cast[T](item)
		if err != nil {
			castErr = err
			return
		}
		out = append(out, t)
	})
	if err != nil {
		return nil, err
	}
	return out, castErr
}

func (c *informerCache[T]) AddIndexer(name string, indexer Indexer[T]) error {
	inf, err := c.informer()
	if err != nil {
		return err
	}
	return inf.AddIndexers(cache.Indexers{name: func(item any) ([]string, error) {
		t, err := cast[T](item)
		if err != nil {
			return nil, err
		}
		m, err := meta.Accessor(t)
		if err != nil {
			return nil, fmt.Errorf("generic: index %q: %w", name, err)
		}
		values, err := indexer(t)
		if err != nil || m.GetNamespace() == "" {
			return values, err
		}
		scoped := make([]string, len(values))
		for i, v := range values {
			scoped[i] = scopedValue(m.GetNamespace(), v)
		}
		return scoped, nil
	}})
}

// scopedValue is the stored index value of value computed from an object
// of namespace: value itself for a cluster-scoped object, else
// namespace/value. A namespace has no "/", so values of two namespaces
// never meet.
func scopedValue(namespace, value string) string {
	if namespace == "" {
		return value
	}
	return namespace + "/" + value
}

func (c *informerCache[T]) GetByIndex(namespace, name, value string) ([]T, error) {
	switch {
	case c.namespaced && namespace == "":
		return nil, fmt.Errorf("generic: GetByIndex(%q, %q, %q): a namespace is required: index lookups of a namespaced kind are scoped to one namespace (GetByIndexAllNamespaces spans them)", namespace, name, value)
	case !c.namespaced && namespace != "":
		return nil, fmt.Errorf("generic: GetByIndex(%q, %q, %q): %s is cluster-scoped: its namespace is \"\"", namespace, name, value, c.gr)
	}
	return c.byIndex(name, scopedValue(namespace, value))
}

func (c *informerCache[T]) GetByIndexAllNamespaces(name, value string) ([]T, error) {
	inf, err := c.informer()
	if err != nil {
		return nil, err
	}
	indexer := inf.GetIndexer()
	if _, ok := indexer.GetIndexers()[cache.NamespaceIndex]; !ok {
		return nil, fmt.Errorf("generic: GetByIndexAllNamespaces(%q, %q): the informer has no namespace index (%q)", name, value, cache.NamespaceIndex)
	}
	var out []T
	for _, namespace := range indexer.ListIndexFuncValues(cache.NamespaceIndex) {
		ts, err := c.byIndex(name, scopedValue(namespace, value))
		if err != nil {
			return nil, err
		}
		out = append(out, ts...)
	}
	return out, nil
}

// byIndex returns the objects whose stored value of index name is value.
func (c *informerCache[T]) byIndex(name, value string) ([]T, error) {
	inf, err := c.informer()
	if err != nil {
		return nil, err
	}
	items, err := inf.GetIndexer().ByIndex(name, value)
	if err != nil {
		return nil, err
	}
	out := make([]T, 0, len(items))
	for _, item := range items {
		t, err := cast[T](item)
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, nil
}

func cast[T runtime.Object](item any) (T, error) {
	t, ok := item.(T)
	if !ok {
		var zero T
		return zero, fmt.Errorf("generic: cached object is %T, not %T: the scheme maps the kind to another Go type", item, zero)
	}
	return t, nil
}
