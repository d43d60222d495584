package engine

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

// finalizerWriteTimeout bounds one finalizer patch. A removal is detached
// from the term's context so that a handler that finished its cleanup while
// the term ended can still let its finalizer go during the drain (the write
// guard still refuses it once the fence closes); the finalizers put on an
// object before its chain runs are new work, bounded by the term too.
const finalizerWriteTimeout = 30 * time.Second

// finalizerAttempts is how many times finalizersFirst patches one object,
// reading the newer object from the apiserver after each conflict, before
// it gives the key back to the queue.
const finalizerAttempts = 4

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
// failed finalizer removal runs it again. h runs at its place in the chain.
//
// Finalizers come first, whatever the registration order: before any
// handler of the chain runs on a live object (no deletionTimestamp), the
// finalizers of all the controller's remove handlers that it lacks are
// added to it in one write, and the chain runs on the object that write
// returned. A change handler, even one registered before h, therefore
// only ever gets a live object that h's finalizer already holds, and
// nothing it creates outside the cluster can escape h. When the object
// turns out to be gone, the chain runs as for a deleted object (nil); when
// the write fails, no handler runs and the key is retried with backoff
// (the failure is reported as a *HandlerError of the remove handlers whose
// finalizers are missing). A remove handler whose ctx has ended no longer
// counts, even before it leaves the chain.
//
// The apiserver can still delete an object past a finalizer it said it
// had added, when the delete read the object just before
// (kubernetes/kubernetes#77988). The informer then reports the deletion
// of an object that carries h's finalizer and no deletionTimestamp: h
// runs on that last state (a copy whose deletionTimestamp is when the
// deletion was seen), after the other handlers of the key's next run,
// and again with backoff until it succeeds or returns ErrSkip; the chain
// itself gets nil, as for any deleted object.
//
// The apiserver adds no finalizer to an object being deleted. An object
// whose deletion started before its finalizer was added (it still exists
// only because some other finalizer holds it), or before h was registered,
// never runs h; the change handlers get it as it is, with its
// deletionTimestamp set and without h's finalizer, and must not create
// anything outside the cluster for it: nothing would clean it up. (The
// status and generating handlers of pkg/generic pass deleting objects
// over.)
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
	registered := ctx
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
			// finalizersFirst put the finalizer on before the chain ran;
			// it can only be missing here when a handler before this
			// one returned an object without it.
			if held || registered.Err() != nil {
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
	}, func(e *handlerEntry) { e.finalizer, e.remove = finalizer, h })
	return nil
}

// finalizersFirst returns obj carrying the finalizer of every remove
// handler of chain whose registration context lives, adding those it
// lacks in one patch (see AddRemoveHandler): the object the patch
// returned, or nil when the object is gone. A conflict reads the newer
// object from the apiserver and starts over with it, up to
// finalizerAttempts patches. An object being deleted is returned as it is:
// no finalizer can be added to it.
func (c *Controller) finalizersFirst(ctx context.Context, key string, obj runtime.Object, chain []handlerEntry) (runtime.Object, *HandlerError) {
	var wanted, owners []string
	for i := range chain {
		h := &chain[i]
		if h.finalizer == "" || h.ended() || slices.Contains(wanted, h.finalizer) {
			continue
		}
		wanted, owners = append(wanted, h.finalizer), append(owners, h.name)
	}
	if len(wanted) == 0 {
		return obj, nil
	}
	start := time.Now()
	fail := func(handlers []string, err error) *HandlerError {
		name := strings.Join(handlers, ",")
		for _, h := range handlers {
			c.metrics.observeHandler(c.name, h, resultError, time.Since(start))
		}
		return &HandlerError{Controller: c.name, Handler: name, Key: key,
			Err: fmt.Errorf("add finalizers before the handlers run: %w", err)}
	}
	for attempt := 1; ; attempt++ {
		m, err := meta.Accessor(obj)
		if err != nil {
			return nil, fail(owners, err)
		}
		if m.GetDeletionTimestamp() != nil {
			return obj, nil
		}
		have := m.GetFinalizers()
		var missing, missingOwners []string
		for i, f := range wanted {
			if !slices.Contains(have, f) {
				missing, missingOwners = append(missing, f), append(missingOwners, owners[i])
			}
		}
		if len(missing) == 0 {
			return obj, nil
		}
		patched, err := c.writeFinalizers(ctx, m, append(slices.Clone(have), missing...))
		switch {
		case err == nil:
			return patched, nil
		case apierrors.IsNotFound(err):
			return nil, nil // deleted meanwhile: it had no finalizer to hold it
		case !apierrors.IsConflict(err) || attempt == finalizerAttempts:
			return nil, fail(missingOwners, err)
		}
		// Changed since it was read (often: the cache lags behind a
		// write already made). Start over with the newer object.
		live, err := c.newObj()
		if err != nil {
			return nil, fail(missingOwners, err)
		}
		if err := c.client.Get(ctx, m.GetNamespace(), m.GetName(), metav1.GetOptions{}, live); err != nil {
			if apierrors.IsNotFound(err) {
				return nil, nil
			}
			return nil, fail(missingOwners, err)
		}
		obj = live
	}
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

// patchFinalizers sets m's finalizers, detached from ctx's end (see
// finalizerWriteTimeout).
func (c *Controller) patchFinalizers(ctx context.Context, m metav1.Object, finalizers []string) (runtime.Object, error) {
	return c.writeFinalizers(context.WithoutCancel(ctx), m, finalizers)
}

// writeFinalizers sets m's finalizers with a merge patch carrying m's
// resourceVersion, within ctx and finalizerWriteTimeout.
func (c *Controller) writeFinalizers(ctx context.Context, m metav1.Object, finalizers []string) (runtime.Object, error) {
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
	ctx, cancel := context.WithTimeout(ctx, finalizerWriteTimeout)
	defer cancel()
	if err := c.client.Patch(ctx, m.GetNamespace(), m.GetName(), types.MergePatchType, patch, metav1.PatchOptions{}, out); err != nil {
		return nil, err
	}
	return out, nil
}
