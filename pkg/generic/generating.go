package generic

import (
	"context"
	"errors"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/events"

	"github.com/rein-k8s/rein/internal/engine"
	"github.com/rein-k8s/rein/pkg/apply"
)

// GeneratingHandler computes the children obj should have and its status,
// from status, a copy of its current status that it may change and return.
type GeneratingHandler[T runtime.Object, S any] func(ctx context.Context, obj T, status S) ([]runtime.Object, S, error)

// GeneratingController is what RegisterGeneratingHandler needs of a typed
// controller; every Controller has it.
type GeneratingController[T runtime.Object] interface {
	StatusController[T]
	OnRemove(ctx context.Context, name string, h ObjectHandler[T])
}

// GeneratingOptions configure a generating handler.
type GeneratingOptions[S any] struct {
	// Conditions returns the status's conditions: the handler sets the
	// condition ConditionType there, True when the children were applied,
	// False with the error otherwise. Nil: no condition.
	Conditions func(status *S) *[]metav1.Condition
	// ConditionType is the condition's type; "" means "Generated".
	ConditionType string
	// Recorder, when set, records a Warning Event on the owner for each
	// failure (reason GenerateFailed or ApplyFailed).
	Recorder events.EventRecorder
	// KeepChildren leaves the children when the owner is deleted (no
	// finalizer; children with an owner reference are still deleted by
	// the garbage collector).
	KeepChildren bool
	// Handler configures the OnChange handler (e.g. IgnoreStatus).
	Handler []HandlerOption
}

// RegisterGeneratingHandler registers handler as an OnChange handler named
// name that keeps obj's children as handler declares them, as set (owned
// by obj; see pkg/apply), and writes the status handler returns when it
// changed:
//
//   - on success, the children are applied (nothing is sent when they
//     match) and the returned status is written, with the condition set to
//     True;
//   - when handler fails, nothing is applied and the last status is kept:
//     only the condition changes, to False with the error, so a status is
//     never half-written; the key is retried with backoff;
//   - when applying fails, the returned status is not written either (it
//     describes children that are not all there): the condition says why;
//   - a handler that returns RequeueAfter (it polls something outside the
//     cluster) has succeeded: its children are applied and its status
//     written, and the key comes back after the delay; ErrSkip applies
//     and writes nothing.
//
// Unless opts.KeepChildren, an OnRemove handler of the same name deletes
// every child when obj is deleted, also those no owner reference can
// reach (another namespace, cluster-scoped children of a namespaced
// owner). Generated code wraps it per kind with a status
// (Register<Kind>GeneratingHandler).
func RegisterGeneratingHandler[T runtime.Object, S any, PS interface {
	*S
	DeepCopy() *S
}](ctx context.Context, controller GeneratingController[T], set *apply.Set, name string, status func(T) PS, handler GeneratingHandler[T, S], opts GeneratingOptions[S]) {
	needStatus(controller)
	condType := opts.ConditionType
	if condType == "" {
		condType = "Generated"
	}
	controller.OnChange(ctx, name, func(ctx context.Context, key string, obj T) (T, error) {
		if isNil(obj) {
			return obj, nil
		}
		m, err := meta.Accessor(obj)
		if err != nil || m.GetDeletionTimestamp() != nil {
			return obj, err
		}
		current := status(obj)
		children, next, genErr := handler(ctx, obj, *current.DeepCopy())
		if errors.Is(genErr, ErrSkip) {
			return obj, genErr
		}
		// A requeue (polling something outside the cluster) is a success
		// that asks to come back: apply and write, then requeue.
		var requeue *engine.RequeueAfterError
		if errors.As(genErr, &requeue) {
			genErr = nil
		}
		var failure error
		reason := ""
		if genErr != nil {
			failure, reason = genErr, "GenerateFailed"
		} else if _, applyErr := set.Apply(ctx, obj, children...); applyErr != nil {
			failure, reason = applyErr, "ApplyFailed"
		}
		if failure != nil {
			// Keep the last good status; only the condition says what failed.
			next = *current.DeepCopy()
			if opts.Recorder != nil {
				opts.Recorder.Eventf(obj, nil, corev1.EventTypeWarning, reason, "Apply", "%s", failure.Error())
			}
		}
		if opts.Conditions != nil {
			cond := metav1.Condition{Type: condType, Status: metav1.ConditionTrue, Reason: "Applied", ObservedGeneration: m.GetGeneration(),
				Message: fmt.Sprintf("children of set %q are as declared", name)}
			if failure != nil {
				cond.Status, cond.Reason, cond.Message = metav1.ConditionFalse, reason, failure.Error()
			}
			meta.SetStatusCondition(opts.Conditions(&next), cond)
		}
		result := failure // what the engine sees: the failure, or the requeue
		if result == nil && requeue != nil {
			result = requeue
		}
		return writeStatus(ctx, controller, obj, (*S)(current), next, result)
	}, opts.Handler...)
	if !opts.KeepChildren {
		controller.OnRemove(ctx, name, func(ctx context.Context, key string, obj T) (T, error) {
			if isNil(obj) {
				return obj, nil
			}
			_, err := set.Delete(ctx, obj)
			return obj, err
		})
	}
}
