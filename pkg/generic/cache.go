package generic

import (
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/tools/cache"
)

// Cache reads objects of one kind from the shared informer cache. Objects
// it returns are shared with every other reader: never modify one; call
// DeepCopy first.
type Cache[T runtime.Object] interface {
	// Get returns the cached object, or a NotFound API error.
	Get(namespace, name string) (T, error)
	// List returns the cached objects of namespace ("" for all) that
	// selector matches.
	List(namespace string, selector labels.Selector) ([]T, error)
	// AddIndexer adds an index computed by indexer; objects can then be
	// looked up by GetByIndex(name, value).
	AddIndexer(name string, indexer Indexer[T]) error
	// GetByIndex returns the objects whose index name has value.
	GetByIndex(name, value string) ([]T, error)
}

// Indexer computes the index values of one object.
type Indexer[T runtime.Object] func(obj T) ([]string, error)

// NonNamespacedCache is Cache for cluster-scoped kinds.
type NonNamespacedCache[T runtime.Object] interface {
	Get(name string) (T, error)
	List(selector labels.Selector) ([]T, error)
	AddIndexer(name string, indexer Indexer[T]) error
	GetByIndex(name, value string) ([]T, error)
}

type informerCache[T runtime.Object] struct {
	gr       schema.GroupResource
	informer func() (cache.SharedIndexInformer, error)
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
		return indexer(t)
	}})
}

func (c *informerCache[T]) GetByIndex(name, value string) ([]T, error) {
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

type nonNamespacedCache[T runtime.Object] struct{ c *informerCache[T] }

func (n nonNamespacedCache[T]) Get(name string) (T, error) { return n.c.Get("", name) }
func (n nonNamespacedCache[T]) List(selector labels.Selector) ([]T, error) {
	return n.c.List("", selector)
}
func (n nonNamespacedCache[T]) AddIndexer(name string, indexer Indexer[T]) error {
	return n.c.AddIndexer(name, indexer)
}
func (n nonNamespacedCache[T]) GetByIndex(name, value string) ([]T, error) {
	return n.c.GetByIndex(name, value)
}
