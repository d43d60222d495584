package related

import (
	"context"
	"errors"
	"fmt"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/tools/cache"

	"github.com/rein-k8s/rein/internal/engine"
	"github.com/rein-k8s/rein/pkg/apply"
	"github.com/rein-k8s/rein/pkg/generic"
)

// Resolver returns the keys ("namespace/name", or "name" for cluster-scoped
// kinds) of the target objects a source object concerns. It gets the
// source's last known state also when the source was deleted.
type Resolver func(source runtime.Object) ([]string, error)

// Target is the controller keys are queued on: any typed controller
// (generic.Controller).
type Target interface {
	GroupVersionKind() schema.GroupVersionKind
	Enqueue(namespace, name string)
}

// Owns re-runs owner's handlers when a child it owns changes or goes: an
// object of children (a typed controller's Informer(), a factory's cache)
// whose controller owner reference is of owner's kind, or which carries
// pkg/apply's owner annotations. It is Watch with OwnerOf, for children
// that a handler creates and keeps (the Jobs of a CronJob) as well as
// those an apply.Set keeps.
func Owns(ctx context.Context, owner Target, children ...cache.SharedIndexInformer) error {
	if owner == nil {
		return errors.New("related: Owns needs an owner controller")
	}
	return Watch(ctx, "owns", OwnerOf(owner.GroupVersionKind()), owner, children...)
}

// Watch enqueues on target the keys resolve returns for every object of
// sources that is added, changed or deleted, until ctx ends. name names the
// watch in logs. Resolver errors are logged with the source's key and
// otherwise ignored: one bad object must not stop the watch.
func Watch(ctx context.Context, name string, resolve Resolver, target Target, sources ...cache.SharedIndexInformer) error {
	if resolve == nil || target == nil || len(sources) == 0 {
		return fmt.Errorf("related: watch %q needs a resolver, a target and at least one source", name)
	}
	log := generic.Logger(ctx).WithField("relatedWatch", name).WithField("target", target.GroupVersionKind().Kind)
	// A source's initial list and its unchanged resyncs change no
	// target: a target that can queue at low priority (a
	// generic.Controller) gets them there, behind real changes, so that
	// a start does not put every owner ahead of them.
	low, _ := target.(interface {
		EnqueueLow(namespace, name string, delay time.Duration)
	})
	handle := func(obj any, p engine.Priority) {
		src, ok := obj.(runtime.Object)
		if !ok {
			return
		}
		keys, err := resolve(src)
		if err != nil {
			entry := log // handle runs on each source's goroutine: no shared writes
			if m, ok := obj.(metav1.Object); ok {
				entry = entry.WithField("source", m.GetNamespace()+"/"+m.GetName())
			}
			entry.WithError(err).Warn("resolver failed; nothing enqueued")
			return
		}
		for _, k := range keys {
			namespace, name, err := cache.SplitMetaNamespaceKey(k)
			if err != nil {
				log.WithError(err).Warn("resolver returned a malformed key; skipped")
				continue
			}
			if low != nil && p == engine.PriorityLow {
				low.EnqueueLow(namespace, name, 0)
			} else {
				target.Enqueue(namespace, name)
			}
		}
	}
	var regs []struct {
		informer cache.SharedIndexInformer
		reg      cache.ResourceEventHandlerRegistration
	}
	for _, s := range sources {
		reg, err := s.AddEventHandler(engine.OnEveryEventWithPriority(handle))
		if err != nil {
			for _, r := range regs {
				_ = r.informer.RemoveEventHandler(r.reg)
			}
			return fmt.Errorf("related: watch %q: %w", name, err)
		}
		regs = append(regs, struct {
			informer cache.SharedIndexInformer
			reg      cache.ResourceEventHandlerRegistration
		}{s, reg})
	}
	context.AfterFunc(ctx, func() {
		for _, r := range regs {
			_ = r.informer.RemoveEventHandler(r.reg)
		}
	})
	return nil
}

// OwnerOf resolves a child to its owner of kind owner: its controller
// owner reference of that kind (in the child's namespace), else the owner
// annotations pkg/apply writes (apply.OwnerKeyAnnotation and
// apply.OwnerKindAnnotation), which also reach owners in another namespace.
func OwnerOf(owner schema.GroupVersionKind) Resolver {
	return func(source runtime.Object) ([]string, error) {
		m, ok := source.(metav1.Object)
		if !ok {
			return nil, fmt.Errorf("%T has no object metadata", source)
		}
		if ref := metav1.GetControllerOfNoCopy(m); ref != nil {
			gv, err := schema.ParseGroupVersion(ref.APIVersion)
			if err != nil {
				return nil, err
			}
			if gv.Group == owner.Group && ref.Kind == owner.Kind {
				if m.GetNamespace() == "" {
					return []string{ref.Name}, nil
				}
				return []string{m.GetNamespace() + "/" + ref.Name}, nil
			}
		}
		if k := m.GetAnnotations()[apply.OwnerKeyAnnotation]; k != "" && m.GetAnnotations()[apply.OwnerKindAnnotation] == owner.GroupKind().String() {
			return []string{k}, nil
		}
		return nil, nil
	}
}

// Referencing resolves a source (say, a Secret) to the target objects
// that reference it, through index of the target's cache: index must map a
// target object to the keys of the sources it references
// ("namespace/name"). Add it to the target's informer before the caches
// start (Controller.Informer().AddIndexers). An index added by a
// typed cache (generic.Cache.AddIndexer) stores each value as
// namespace/value: its function returns the names of the sources in the
// target's own namespace.
func Referencing(targetCache cache.Indexer, index string) Resolver {
	return func(source runtime.Object) ([]string, error) {
		m, ok := source.(metav1.Object)
		if !ok {
			return nil, fmt.Errorf("%T has no object metadata", source)
		}
		sourceKey := m.GetName()
		if m.GetNamespace() != "" {
			sourceKey = m.GetNamespace() + "/" + m.GetName()
		}
		keys, err := targetCache.IndexKeys(index, sourceKey)
		if err != nil {
			return nil, errors.Join(fmt.Errorf("target cache index %q", index), err)
		}
		return keys, nil
	}
}
