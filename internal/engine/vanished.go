package engine

import (
	"context"
	"slices"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/cache"
)

// An object can be deleted past a finalizer that the apiserver said it
// had added. Its Delete reads the object, finds no finalizer and removes
// it unconditionally; a patch that adds a finalizer between that read and
// that removal succeeds, and the object is gone anyway
// (kubernetes/kubernetes#77988; the apiserver this engine is tested
// against has it). Finalizers come first, so a change handler may already
// have created something outside the cluster for the object: its cleanup
// must still run.
//
// The informer reports such a deletion with the object's last stored
// state, which carries the finalizer and no deletionTimestamp (an object
// deleted through its finalizers has one). The controller notes that
// state (noteVanished) and, at the end of the key's next chain run, after
// every other handler, runs each remove handler whose finalizer it
// carried on a copy of it with deletionTimestamp set to when the
// deletion was seen (cleanUpVanished), until the handler succeeds or
// returns ErrSkip; a failure is retried with the key. The end of the
// chain is the place: a run that began on the cached object before it
// vanished may still be creating what the cleanup deletes.
//
// A tombstone (cache.DeletedFinalStateUnknown, a deletion missed by a
// broken watch) holds the last state the cache had, which may be older
// than the deletion: a remove handler can then run again on an object it
// already cleaned up, which its idempotence makes harmless.

// vanishedObject is the last state of one object deleted past the
// finalizers of pending.
type vanishedObject struct {
	obj     runtime.Object // shared with the informer: never changed
	uid     types.UID
	seen    metav1.Time
	pending []string // finalizers whose remove handlers have not succeeded yet
}

// noteVanished is the informer's delete callback: it notes obj when it
// was deleted past the finalizer of a registered remove handler.
func (c *Controller) noteVanished(obj any) {
	if tombstone, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = tombstone.Obj
	}
	last, ok := obj.(runtime.Object)
	if !ok {
		return
	}
	m, err := meta.Accessor(last)
	if err != nil || m.GetDeletionTimestamp() != nil {
		return
	}
	var pending []string
	for _, h := range *c.handlers.Load() {
		if h.finalizer != "" && !h.ended() && slices.Contains(m.GetFinalizers(), h.finalizer) && !slices.Contains(pending, h.finalizer) {
			pending = append(pending, h.finalizer)
		}
	}
	if len(pending) == 0 {
		return
	}
	key, err := cache.MetaNamespaceKeyFunc(last)
	if err != nil {
		return
	}
	c.vmu.Lock()
	known := slices.ContainsFunc(c.vanished[key], func(v *vanishedObject) bool { return v.uid == m.GetUID() })
	if !known {
		c.vanished[key] = append(c.vanished[key], &vanishedObject{obj: last, uid: m.GetUID(), seen: metav1.Now(), pending: pending})
	}
	c.vmu.Unlock()
	if !known {
		c.log.WithField("key", key).WithField("finalizers", pending).
			Warn("object deleted past the finalizers of its remove handlers (kubernetes#77988): they run on its last state")
	}
}

// pendingVanished returns, for the remove handler of finalizer, a private
// copy (deletionTimestamp set) of every object of key still waiting for it.
func (c *Controller) pendingVanished(key, finalizer string) []*vanishedObject {
	c.vmu.Lock()
	defer c.vmu.Unlock()
	var out []*vanishedObject
	for _, v := range c.vanished[key] {
		if slices.Contains(v.pending, finalizer) {
			obj := v.obj.DeepCopyObject()
			if m, err := meta.Accessor(obj); err == nil {
				m.SetDeletionTimestamp(&v.seen)
			}
			out = append(out, &vanishedObject{obj: obj, uid: v.uid, seen: v.seen})
		}
	}
	return out
}

// releaseVanished notes that finalizer's remove handler is done with the
// object uid of key.
func (c *Controller) releaseVanished(key string, uid types.UID, finalizer string) {
	c.vmu.Lock()
	defer c.vmu.Unlock()
	states := c.vanished[key]
	for _, v := range states {
		if v.uid == uid {
			v.pending = slices.DeleteFunc(v.pending, func(f string) bool { return f == finalizer })
		}
	}
	states = slices.DeleteFunc(states, func(v *vanishedObject) bool { return len(v.pending) == 0 })
	if len(states) == 0 {
		delete(c.vanished, key)
	} else {
		c.vanished[key] = states
	}
}

// dropVanished forgets the vanished objects of key: they are another
// replica's to clean up.
func (c *Controller) dropVanished(key string) {
	c.vmu.Lock()
	delete(c.vanished, key)
	c.vmu.Unlock()
}

// forgetVanishedFinalizer stops waiting for finalizer's remove handler
// when none of chain has it any more.
func (c *Controller) forgetVanishedFinalizer(finalizer string, chain []handlerEntry) {
	if slices.ContainsFunc(chain, func(e handlerEntry) bool { return e.finalizer == finalizer }) {
		return
	}
	c.vmu.Lock()
	var keys []string
	for key, states := range c.vanished {
		for _, v := range states {
			if slices.Contains(v.pending, finalizer) {
				keys = append(keys, key)
				break
			}
		}
	}
	c.vmu.Unlock()
	for _, key := range keys {
		for _, v := range c.pendingVanished(key, finalizer) {
			c.releaseVanished(key, v.uid, finalizer)
		}
	}
}

// cleanUpVanished runs the remove handlers of chain on the objects of key
// that vanished past their finalizers, adding their failures and requeue
// requests to res. A call left running past its timeout (run.left) ends
// the clean-up there.
func (c *Controller) cleanUpVanished(ctx context.Context, t *tracer, key string, chain []handlerEntry, res *chainResult, run *keyRun) {
	c.vmu.Lock()
	none := len(c.vanished[key]) == 0
	c.vmu.Unlock()
	if none {
		return
	}
	for _, h := range chain {
		if h.remove == nil || h.ended() {
			continue
		}
		for _, v := range c.pendingVanished(key, h.finalizer) {
			start := time.Now()
			hctx, span := c.startHandler(ctx, t, &h, key)
			out, herr := c.call(hctx, run, handlerEntry{name: h.name, fn: chainHandler(h.remove)}, key, v.obj)
			result := res.take(out, herr)
			if result == resultSuccess || result == resultSkip {
				// done, or ErrSkip: nothing more to do for it
				c.releaseVanished(key, v.uid, h.finalizer)
			}
			c.metrics.observeHandler(c.name, h.name, result, time.Since(start))
			endHandler(span, result, out, herr)
			if run != nil && run.left {
				return
			}
		}
	}
}
