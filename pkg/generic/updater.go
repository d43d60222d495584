package generic

import (
	"context"

	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/runtime"
)

// Updater writes an object a handler changed: a typed client's Update or
// UpdateStatus (method values fit: controller.Update).
type Updater[T runtime.Object] func(ctx context.Context, obj T) (T, error)

// UpdateOnChange lets a handler change the object it is given and have
// the change written: it runs h on a copy of the object (never the cached
// one) and, when h returns an object that differs from what it was given
// (compared semantically), writes it with update and returns what the
// apiserver answered, so the next handler of the chain sees the written
// object. A handler that fails writes nothing; its error is returned with
// the object it returned. Nothing is written when nothing changed, and
// deletions (a nil object) go to h as they are.
//
// Update writes carry the object's resourceVersion: a change computed
// from a stale read is refused with a conflict and retried by the engine.
// Status handlers with a typed status have RegisterStatusHandler instead.
func UpdateOnChange[T runtime.Object](update Updater[T], h ObjectHandler[T]) ObjectHandler[T] {
	return func(ctx context.Context, key string, obj T) (T, error) {
		if isNil(obj) {
			return h(ctx, key, obj)
		}
		next, err := h(ctx, key, obj.DeepCopyObject().(T))
		if err != nil || isNil(next) || equality.Semantic.DeepEqual(obj, next) {
			return next, err
		}
		return update(ctx, next)
	}
}
