package main

import (
	"context"
	"maps"
	"strings"
	"sync"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	toolswatch "k8s.io/client-go/tools/watch"

	"github.com/rein-k8s/rein/bench/internal/common"
	"github.com/rein-k8s/rein/pkg/shard"
)

// state follows, by watches, the namespace's ConfigMaps' marks and its
// Leases' holders.
type state struct {
	mu      sync.Mutex
	marks   map[string]string         // ConfigMap → mark
	counts  map[string]int            // mark → ConfigMaps carrying it
	uids    map[string]types.UID      // ConfigMap → its UID
	holders map[string][]holderChange // Lease → its holders in order
	// renews is, per member Lease of a sharded group, the renewTime of
	// its member's last write (marks by others left out).
	renews  map[string]time.Time
	changed chan struct{}
	cancel  context.CancelFunc
}

func (s *state) setMark(cm *corev1.ConfigMap, deleted bool) {
	name := cm.Name
	if old, ok := s.marks[name]; ok {
		s.counts[old]--
	}
	if deleted {
		delete(s.marks, name)
		delete(s.uids, name)
		return
	}
	s.marks[name] = cm.Annotations[common.Annotation]
	s.counts[s.marks[name]]++
	s.uids[name] = cm.UID
}

type holderChange struct {
	holder string
	at     time.Time
}

type lw struct {
	watch func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error)
}

func (l lw) WatchWithContext(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
	return l.watch(ctx, o)
}

func follow(cs kubernetes.Interface, ns string) *state {
	ctx, cancel := context.WithCancel(context.Background())
	s := &state{marks: map[string]string{}, counts: map[string]int{}, uids: map[string]types.UID{}, holders: map[string][]holderChange{}, renews: map[string]time.Time{}, changed: make(chan struct{}), cancel: cancel}
	// In pages: the scale scenario's namespace holds 100k ConfigMaps of
	// 1 KiB, too many for one response. Every page is of the first one's
	// snapshot, so its resourceVersion is where the watch starts.
	opts := metav1.ListOptions{Limit: 1000}
	rv := ""
	for {
		list, err := cs.CoreV1().ConfigMaps(ns).List(ctx, opts)
		must(err)
		if rv == "" {
			rv = list.ResourceVersion
		}
		for i := range list.Items {
			s.setMark(&list.Items[i], false)
		}
		if opts.Continue = list.Continue; opts.Continue == "" {
			break
		}
	}
	cmw, err := toolswatch.NewRetryWatcherWithContext(ctx, rv, lw{func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
		return cs.CoreV1().ConfigMaps(ns).Watch(ctx, o)
	}})
	must(err)
	leases, err := cs.CoordinationV1().Leases(ns).List(ctx, metav1.ListOptions{})
	must(err)
	lsw, err := toolswatch.NewRetryWatcherWithContext(ctx, leases.ResourceVersion, lw{func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
		return cs.CoordinationV1().Leases(ns).Watch(ctx, o)
	}})
	must(err)
	handle := func(ev watch.Event) {
		s.mu.Lock()
		defer s.mu.Unlock()
		switch o := ev.Object.(type) {
		case *corev1.ConfigMap:
			s.setMark(o, ev.Type == watch.Deleted)
		case *coordinationv1.Lease:
			if o.Labels[shard.LabelRole] == "member" && o.Annotations[shard.AnnotationState] == "" && ev.Type != watch.Deleted && o.Spec.RenewTime != nil {
				s.renews[o.Name] = o.Spec.RenewTime.Time
			}
			h := ""
			if o.Spec.HolderIdentity != nil && ev.Type != watch.Deleted {
				h = *o.Spec.HolderIdentity
			}
			if hs := s.holders[o.Name]; len(hs) == 0 || hs[len(hs)-1].holder != h {
				// The Lease's acquireTime is the acquirer's clock (this
				// machine's); the watch event arrives later.
				at := time.Now()
				if h != "" && o.Spec.AcquireTime != nil {
					at = o.Spec.AcquireTime.Time
				}
				s.holders[o.Name] = append(s.holders[o.Name], holderChange{h, at})
			}
		default:
			return
		}
		close(s.changed)
		s.changed = make(chan struct{})
	}
	for _, w := range []watch.Interface{cmw, lsw} {
		go func() {
			defer w.Stop()
			for ev := range w.ResultChan() {
				if ev.Object != nil {
					handle(ev)
				}
			}
		}()
	}
	return s
}

// await waits until cond holds (under the lock) or timeout passes.
func (s *state) await(timeout time.Duration, cond func() bool) bool {
	deadline := time.After(timeout)
	for {
		s.mu.Lock()
		ok := cond()
		ch := s.changed
		s.mu.Unlock()
		if ok {
			return true
		}
		select {
		case <-ch:
		case <-deadline:
			return false
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// allMarked waits until n ConfigMaps carry mark.
func (s *state) allMarked(mark string, n int, timeout time.Duration) bool {
	return s.await(timeout, func() bool { return s.counts[mark] == n })
}

// holderAfter waits for a non-empty holder of lease other than old, seen after t.
func (s *state) holderAfter(lease string, t time.Time, old string, timeout time.Duration) (string, time.Time, bool) {
	var h string
	var at time.Time
	ok := s.await(timeout, func() bool {
		for _, c := range s.holders[lease] {
			if c.at.After(t) && c.holder != "" && c.holder != old {
				h, at = c.holder, c.at
				return true
			}
		}
		return false
	})
	return h, at, ok
}

// holder is lease's current holder as last seen.
func (s *state) holder(lease string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if hs := s.holders[lease]; len(hs) > 0 {
		return hs[len(hs)-1].holder
	}
	return ""
}

// lastRenew is when the member of member Lease name last renewed it (its
// own clock: this machine's).
func (s *state) lastRenew(name string) time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.renews[name]
}

// movedAfter waits until every Lease of names has a holder other than
// from, seen after t, and returns the latest of those changes.
func (s *state) movedAfter(names []string, from string, t time.Time, timeout time.Duration) (time.Time, bool) {
	var last time.Time
	ok := s.await(timeout, func() bool {
		last = time.Time{}
		for _, n := range names {
			hs := s.holders[n]
			if len(hs) == 0 || hs[len(hs)-1].holder == from || hs[len(hs)-1].holder == "" || !hs[len(hs)-1].at.After(t) {
				return false
			}
			if at := hs[len(hs)-1].at; at.After(last) {
				last = at
			}
		}
		return true
	})
	return last, ok
}

// heldBy returns the Leases of names whose holder is now id.
func (s *state) heldBy(names []string, id string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, n := range names {
		if hs := s.holders[n]; len(hs) > 0 && hs[len(hs)-1].holder == id {
			out = append(out, n)
		}
	}
	return out
}

// identityOf is the identity (<name>_<random>) of the replica started as
// name, as the first of the records it holds names it; "" when it holds
// none.
func (s *state) identityOf(records []string, name string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, n := range records {
		if hs := s.holders[n]; len(hs) > 0 && strings.HasPrefix(hs[len(hs)-1].holder, name+"_") {
			return hs[len(hs)-1].holder
		}
	}
	return ""
}

// objects returns the ConfigMaps as last seen, by name, with their UIDs.
func (s *state) objects() map[string]types.UID {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.uids)
}
