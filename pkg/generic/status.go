package generic

import (
	"context"
	"errors"

	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
)

// StatusHandler computes the status of obj from status, a copy of its
// current status that it may change and return. ctx is the handler's (see
// ObjectHandler).
type StatusHandler[T runtime.Object, S any] func(ctx context.Context, obj T, status S) (S, error)

// StatusController is what RegisterStatusHandler needs of a typed
// controller; every Controller has it.
type StatusController[T runtime.Object] interface {
	OnChange(ctx context.Context, name string, h ObjectHandler[T], opts ...HandlerOption)
	UpdateStatus(ctx context.Context, obj T) (T, error)
}

// RegisterStatusHandler registers handler as an OnChange handler named name
// that writes the status it returns, with UpdateStatus, only when it
// differs from the object's (semantic equality), so that an unchanged
// status costs no request. status returns a pointer to obj's status field.
// An error from handler still writes the status it returned (so a
// condition can say what failed) and then retries the key; deleted and
// deleting objects are passed over. Generated code wraps it per kind
// (Register<Kind>StatusHandler). opts configure the handler (e.g.
// IgnoreStatus, so that its own status writes do not re-run it).
func RegisterStatusHandler[T runtime.Object, S any, PS interface {
	*S
	DeepCopy() *S
}](ctx context.Context, controller StatusController[T], name string, status func(T) PS, handler StatusHandler[T, S], opts ...HandlerOption) {
	needStatus(controller)
	controller.OnChange(ctx, name, func(ctx context.Context, key string, obj T) (T, error) {
		if isNil(obj) {
			return obj, nil
		}
		if m, err := meta.Accessor(obj); err != nil || m.GetDeletionTimestamp() != nil {
			return obj, err
		}
		current := status(obj)
		next, err := handler(ctx, obj, *current.DeepCopy())
		return writeStatus(ctx, controller, obj, current, next, err)
	}, opts...)
}

// statusWriter is a controller that can record that its status is
// written, for the RBAC rules the program prints and checks (pkg/start):
// a typed controller.
type statusWriter interface{ needStatus() }

func needStatus(controller any) {
	if w, ok := controller.(statusWriter); ok {
		w.needStatus()
	}
}

// writeStatus sets obj's status (at current) to next and writes it with
// UpdateStatus, only when it differs; err (the handler's) is returned with
// the write's.
func writeStatus[T runtime.Object, S any](ctx context.Context, controller StatusController[T], obj T, current *S, next S, err error) (T, error) {
	if equality.Semantic.DeepEqual(*current, next) {
		return obj, err
	}
	*current = next
	updated, updateErr := controller.UpdateStatus(ctx, obj)
	if updateErr != nil {
		var zero T
		return zero, errors.Join(err, updateErr)
	}
	return updated, err
}
