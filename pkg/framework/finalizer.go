package framework

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"
)

// FinalizerDomain prefixes the finalizer of an OnRemove handler whose name
// has no domain of its own.
const FinalizerDomain = "rein.dev"

// finalizerWriteTimeout bounds one finalizer patch. It is detached from the
// term's context so that a handler that finished its cleanup while the term
// ended can still let its finalizer go during the drain (the write guard
// still refuses it once the fence closes).
const finalizerWriteTimeout = 30 * time.Second

// FinalizerName is the finalizer an OnRemove handler named name manages:
// name itself when it is qualified ("example.com/cleanup"), else
// "rein.dev/<name>". It fails when the result is not a valid finalizer.
func FinalizerName(name string) (string, error) {
	finalizer := name
	if !strings.Contains(name, "/") {
		finalizer = FinalizerDomain + "/" + name
	}
	if errs := validation.IsQualifiedName(finalizer); len(errs) > 0 {
		return "", fmt.Errorf("handler name %q does not make a valid finalizer %q: %s", name, finalizer, strings.Join(errs, "; "))
	}
	return finalizer, nil
}

// AddRemoveHandler registers h to run when an object of this kind is being
// deleted, until ctx ends. While registered it keeps a finalizer on every
// live object (see FinalizerName), so that deletion waits for h; when h
// succeeds, the finalizer is removed and the deletion completes. h gets the
// object with its deletionTimestamp set; it must be idempotent, since a
// failed finalizer removal runs it again.
//
// Finalizers are added and removed with a JSON merge patch that carries the
// object's resourceVersion as a precondition: it never overwrites a list
// that changed since it was read (another handler's finalizer), and a
// conflict retries with the newer object. Several OnRemove handlers on one
// kind therefore cannot undo each other's finalizers.
func (c *Controller) AddRemoveHandler(ctx context.Context, name string, h Handler) error {
	finalizer, err := FinalizerName(name)
	if err != nil {
		return fmt.Errorf("controller %s: OnRemove: %w", c.name, err)
	}
	c.addChainHandler(ctx, name, func(ctx context.Context, key string, obj runtime.Object) (runtime.Object, error) {
		if obj == nil {
			return nil, nil // gone already: nothing holds it
		}
		m, err := meta.Accessor(obj)
		if err != nil {
			return nil, err
		}
		held := slices.Contains(m.GetFinalizers(), finalizer)
		if m.GetDeletionTimestamp() == nil {
			if held {
				return obj, nil
			}
			return c.patchFinalizers(ctx, m, append(slices.Clone(m.GetFinalizers()), finalizer))
		}
		if !held {
			return obj, nil // deleting, and not ours to clean up
		}
		// The cache can lag behind our own finalizer removal: a retry
		// queued before it would run the cleanup again on an object that
		// is gone (rancher#49328). One read from the apiserver, only when
		// a deletion is pending, settles it.
		if obj, err = c.liveHolder(ctx, m, finalizer); obj == nil || err != nil {
			return nil, err
		}
		if m, err = meta.Accessor(obj); err != nil {
			return nil, err
		}
		out, err := h(ctx, key, obj)
		if err != nil {
			return out, err
		}
		if out != nil {
			if m, err = meta.Accessor(out); err != nil {
				return nil, err
			}
		}
		left := slices.DeleteFunc(slices.Clone(m.GetFinalizers()), func(f string) bool { return f == finalizer })
		patched, err := c.patchFinalizers(ctx, m, left)
		if apierrors.IsNotFound(err) {
			return nil, nil
		}
		return patched, err
	})
	return nil
}

// liveHolder reads the object from the apiserver and returns it when it
// still carries finalizer, or nil when it is gone or released already.
func (c *Controller) liveHolder(ctx context.Context, m metav1.Object, finalizer string) (runtime.Object, error) {
	live, err := c.newObj()
	if err != nil {
		return nil, err
	}
	if err := c.client.Get(ctx, m.GetNamespace(), m.GetName(), metav1.GetOptions{}, live); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, nil
		}
		return nil, err
	}
	lm, err := meta.Accessor(live)
	if err != nil {
		return nil, err
	}
	if lm.GetUID() != m.GetUID() || !slices.Contains(lm.GetFinalizers(), finalizer) {
		return nil, nil
	}
	return live, nil
}

func (c *Controller) patchFinalizers(ctx context.Context, m metav1.Object, finalizers []string) (runtime.Object, error) {
	if finalizers == nil {
		finalizers = []string{}
	}
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{
		"resourceVersion": m.GetResourceVersion(),
		"finalizers":      finalizers,
	}})
	if err != nil {
		return nil, err
	}
	out, err := c.newObj()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), finalizerWriteTimeout)
	defer cancel()
	if err := c.client.Patch(ctx, m.GetNamespace(), m.GetName(), types.MergePatchType, patch, metav1.PatchOptions{}, out); err != nil {
		return nil, err
	}
	return out, nil
}
