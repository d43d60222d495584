// Package leasehistory records the holder changes of one Lease from a
// watch, for rein's tests of elections: who held the Lease at a given
// time, or when a given etcd revision was committed.
package leasehistory

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	toolswatch "k8s.io/client-go/tools/watch"
)

// Change is one change of a Lease's holder.
type Change struct {
	// Holder is the new holder, "" when released or deleted.
	Holder string
	// Seen is when the watch delivered the change.
	Seen time.Time
	// Acquired is the Lease's acquireTime: when the holder took it (or
	// its last holder released it: rein and client-go set it then too),
	// by the writer's clock (this machine's in tests), before its write was
	// stored. Zero when the record has none (a deleted Lease).
	Acquired time.Time
	// Revision is the Lease's resourceVersion, an etcd revision: writes
	// committed at a higher revision came after the change.
	Revision int64
}

// History records every holder change of one Lease, from a watch that
// lives until the context given to Watch ends.
type History struct {
	mu      sync.Mutex
	changes []Change
	changed chan struct{} // closed and replaced on each change
	done    chan struct{}
}

// Watch starts recording the holder changes of Lease namespace/name (the
// current holder first, if the Lease exists), reading it with cfg (a
// testenv.Env's Config). The watch ends with ctx; Wait waits for that.
func Watch(ctx context.Context, cfg *rest.Config, namespace, name string) (*History, error) {
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("leasehistory: %w", err)
	}
	leases := cs.CoordinationV1().Leases(namespace)
	sel := fields.OneTermEqualSelector("metadata.name", name).String()
	list, err := leases.List(ctx, metav1.ListOptions{FieldSelector: sel})
	if err != nil {
		return nil, fmt.Errorf("leasehistory: list lease %s/%s: %w", namespace, name, err)
	}
	w, err := toolswatch.NewRetryWatcherWithContext(ctx, list.ResourceVersion, &cache.ListWatch{
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			o.FieldSelector = sel
			return leases.Watch(ctx, o)
		},
	})
	if err != nil {
		return nil, fmt.Errorf("leasehistory: watch lease %s/%s: %w", namespace, name, err)
	}
	h := &History{changed: make(chan struct{}), done: make(chan struct{})}
	last := "\x00"
	for i := range list.Items {
		h.note(&list.Items[i], false, &last)
	}
	go func() {
		defer close(h.done)
		defer w.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case ev, ok := <-w.ResultChan():
				if !ok {
					return
				}
				if l, isLease := ev.Object.(*coordinationv1.Lease); isLease {
					h.note(l, ev.Type == watch.Deleted, &last)
				}
			}
		}
	}()
	return h, nil
}

func (h *History) note(l *coordinationv1.Lease, deleted bool, last *string) {
	holder := ""
	if l.Spec.HolderIdentity != nil && !deleted {
		holder = *l.Spec.HolderIdentity
	}
	if holder == *last {
		return
	}
	*last = holder
	ch := Change{Holder: holder, Seen: time.Now()}
	if l.Spec.AcquireTime != nil && !deleted {
		ch.Acquired = l.Spec.AcquireTime.Time
	}
	ch.Revision, _ = strconv.ParseInt(l.ResourceVersion, 10, 64)
	h.mu.Lock()
	h.changes = append(h.changes, ch)
	close(h.changed)
	h.changed = make(chan struct{})
	h.mu.Unlock()
}

// Wait waits until the watch has ended (its context ended).
func (h *History) Wait() { <-h.done }

// Changes returns the changes so far, oldest first, and a channel that is
// closed at the next change.
func (h *History) Changes() ([]Change, <-chan struct{}) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]Change(nil), h.changes...), h.changed
}

// HolderAt is who held the Lease at t by the records' acquire times (a
// deletion counts from when it was seen): the writer a write received at t
// must be, for the write to come from the holder. The watch's own delay
// does not enter: every time compared was taken by a writer before its
// write.
func (h *History) HolderAt(t time.Time) string {
	changes, _ := h.Changes()
	holder, from := "", time.Time{}
	for _, ch := range changes {
		start := ch.Acquired
		if start.IsZero() {
			start = ch.Seen
		}
		if !start.After(t) && !start.Before(from) {
			holder, from = ch.Holder, start
		}
	}
	return holder
}

// HolderAtRevision is who held the Lease when etcd revision rev was
// committed: the holder of the last change at a lower revision.
func (h *History) HolderAtRevision(rev int64) string {
	changes, _ := h.Changes()
	holder := ""
	for _, ch := range changes {
		if ch.Revision < rev {
			holder = ch.Holder
		}
	}
	return holder
}
