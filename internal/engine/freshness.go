package engine

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/resourceversion"
	"k8s.io/client-go/tools/cache"
)

// A hold (a single leader's term, or a shard newly held here) must not run
// a handler on a cache that is behind the apiserver: a replica that was
// stopped, or cut off, wakes with caches that miss the events of its
// sleep, and a handler run on such a cache acts on objects that are gone
// (an external create for a deleted object leaks: nothing deletes it).
//
// The check is a consistent read. When a hold begins, each cache lists
// its kind, metadata only, with its own namespaces and selectors and
// resourceVersion "" (the apiserver answers as of now, not from a lagging
// copy). Each object of that list must be in the cache at its listed
// resourceVersion or a newer one, and each cached object missing from the
// list must leave the cache (or be newer than the list: created since).
// Until then the hold's handlers wait; every event of the cache re-checks
// the keys still behind. The informer's own resourceVersion cannot answer
// this alone: it moves only on events and on bookmarks (about once a
// minute), so a quiet kind's looks old however current its cache is.
//
// The cost is one metadata list per cache per hold: measured in
// docs/benchmarks.md ("Fresh first").

// currentPageSize is the page size of the freshness list: large pages, as
// the list runs once per hold and its items are metadata only.
const currentPageSize = 5000

// lagWarning is how long a hold waits for a cache before it says, in the
// log and in /readyz, which cache lags.
const lagWarning = 2 * time.Second

// changeSignal wakes waiters when a cache changes. A waiter takes the
// channel before it looks at the cache, so no change is missed between
// its look and its wait. While a check records, it also keeps the last
// resourceVersion of each object deleted from the cache: an object the
// apiserver listed and the cache no longer holds is current if it was
// deleted since (not if the cache never got it).
type changeSignal struct {
	mu        sync.Mutex
	ch        chan struct{}
	recording int
	deleted   map[string]string // key → last resourceVersion seen
}

// next returns a channel closed at the next change.
func (s *changeSignal) next() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ch == nil {
		s.ch = make(chan struct{})
	}
	return s.ch
}

// changed wakes every waiter; without waiters it costs a lock.
func (s *changeSignal) changed() {
	s.mu.Lock()
	if s.ch != nil {
		close(s.ch)
		s.ch = nil
	}
	s.mu.Unlock()
}

// gone notes the deletion of obj from the cache (while a check records)
// and wakes the waiters.
func (s *changeSignal) gone(obj any) {
	s.mu.Lock()
	if s.recording > 0 {
		if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
			// A relist found it gone: when, it cannot say. The relist
			// ran while this check recorded, after its list began.
			s.deleted[tomb.Key] = deletedAtSomePoint
		} else if key, err := cache.MetaNamespaceKeyFunc(obj); err == nil {
			if m, err := meta.Accessor(obj); err == nil {
				// A watch's delete carries the deletion's version.
				s.deleted[key] = m.GetResourceVersion()
			}
		}
	}
	s.mu.Unlock()
	s.changed()
}

// record keeps deletions until the returned function is called. A check
// starts recording before it lists, so that no deletion after its list is
// missed.
func (s *changeSignal) record() (stop func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.recording == 0 {
		s.deleted = map[string]string{}
	}
	s.recording++
	return func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.recording--; s.recording == 0 {
			s.deleted = nil
		}
	}
}

// deletedSince reports whether key left the cache, while recording, at
// resourceVersion rv or later.
func (s *changeSignal) deletedSince(key, rv string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	last, ok := s.deleted[key]
	return ok && (last == deletedAtSomePoint || notOlder(last, rv))
}

// deletedAtSomePoint is the version noted for an object a relist found
// gone.
const deletedAtSomePoint = "*"

// liveVersions is what the apiserver holds of a cache's objects at one
// moment: each key's resourceVersion, and each list's own (by namespace;
// "" for a cache of every namespace or of a cluster-scoped kind).
type liveVersions struct {
	keys map[string]string
	rvs  map[string]string
}

// listRV is the resourceVersion of the list that would have held key.
func (l liveVersions) listRV(key string) string {
	if rv, ok := l.rvs[""]; ok && len(l.rvs) == 1 {
		return rv
	}
	ns, _, _ := cache.SplitMetaNamespaceKey(key)
	return l.rvs[ns]
}

// listLive lists the objects of si's cache as the apiserver has them now;
// with shardSelector, those of that range only (a shard of a partitioned
// cache).
func (f *CacheFactory) listLive(ctx context.Context, si *sharedInformer, shardSelector string) (liveVersions, error) {
	res := si.res
	res.Form = Metadata
	client, err := f.clients.ForResource(res)
	if err != nil {
		return liveVersions{}, err
	}
	selectors := f.selectorsOf(si.res)
	live := liveVersions{keys: map[string]string{}, rvs: map[string]string{}}
	for _, ns := range f.namespacesOf(si.res) {
		opts := metav1.ListOptions{Limit: currentPageSize, ShardSelector: shardSelector}
		selectors(&opts)
		for {
			var page metav1.PartialObjectMetadataList
			if err := client.List(ctx, ns, opts, &page); err != nil {
				return liveVersions{}, fmt.Errorf("list %s: %w", si.res, err)
			}
			if opts.Continue == "" {
				live.rvs[ns] = page.ResourceVersion // later pages share it
			}
			for i := range page.Items {
				m := &page.Items[i].ObjectMeta
				key := m.Name
				if m.Namespace != "" {
					key = m.Namespace + "/" + m.Name
				}
				live.keys[key] = m.ResourceVersion
			}
			if page.Continue == "" {
				break
			}
			opts.Continue = page.Continue
		}
	}
	return live, nil
}

// newer reports whether resourceVersion a is newer than b ("" is oldest).
// Versions that do not compare (not rein's apiserver's kind) count as
// newer: the check cannot tell, and does not hold a hold back for it.
func newer(a, b string) bool {
	if b == "" {
		return a != ""
	}
	c, err := resourceversion.CompareResourceVersion(a, b)
	return err != nil || c > 0
}

// notOlder reports whether a is b or newer.
func notOlder(a, b string) bool { return a == b || newer(a, b) }

// behind returns the keys of live (those match admits) whose cached state
// is older than the apiserver's, and the cached keys live lacks that are
// not newer than it: each waits for an event of the cache.
func behind(store cache.Store, deletions *changeSignal, live liveVersions, match func(key string) bool) map[string]string {
	out := map[string]string{}
	for key, rv := range live.keys {
		if match(key) && !listedCurrent(store, deletions, key, rv) {
			out[key] = rv
		}
	}
	for _, key := range store.ListKeys() {
		if _, listed := live.keys[key]; !listed && match(key) && !cachedNewer(store, key, live.listRV(key)) {
			out[key] = "" // gone from the apiserver: must leave the cache
		}
	}
	return out
}

// listedCurrent reports whether the cache is current on a key the
// apiserver listed at rv: it holds it at rv or newer, or the object was
// deleted since.
func listedCurrent(store cache.Store, deletions *changeSignal, key, rv string) bool {
	return cachedAtLeast(store, key, rv) || deletions.deletedSince(key, rv)
}

// cachedAtLeast reports whether the cache holds key at resourceVersion rv
// or newer.
func cachedAtLeast(store cache.Store, key, rv string) bool {
	return cachedVersion(store, key, func(cached string) bool { return notOlder(cached, rv) }, false)
}

// cachedNewer reports whether the cache lacks key, or holds it at a
// version newer than listRV: the state of a key the apiserver did not
// list (deleted; or created since the list).
func cachedNewer(store cache.Store, key, listRV string) bool {
	return cachedVersion(store, key, func(cached string) bool { return newer(cached, listRV) }, true)
}

// cachedVersion applies current to the cached resourceVersion of key, or
// returns absent when the cache has no such key.
func cachedVersion(store cache.Store, key string, current func(rv string) bool, absent bool) bool {
	obj, ok, err := store.GetByKey(key)
	if err != nil || !ok {
		return absent
	}
	m, err := meta.Accessor(obj)
	if err != nil || m.GetResourceVersion() == "" {
		return true // a transform that drops versions: cannot tell
	}
	return current(m.GetResourceVersion())
}

// stillBehind narrows stale to the keys whose cached state is still
// older than the apiserver's was.
func stillBehind(store cache.Store, deletions *changeSignal, stale map[string]string, live liveVersions) {
	for key, rv := range stale {
		if (rv == "" && cachedNewer(store, key, live.listRV(key))) || (rv != "" && listedCurrent(store, deletions, key, rv)) {
			delete(stale, key)
		}
	}
}

// awaitCurrent waits until si's cache holds, for every key match admits,
// the apiserver's state as of the call or a newer one. It reports the lag
// through lagging once it has waited lagWarning.
//
// store is the cache checked: si's, or one shard's of a partitioned si,
// whose range shardSelector names ("" for the whole kind).
func (f *CacheFactory) awaitCurrent(ctx context.Context, si *sharedInformer, store cache.Store, shardSelector string, match func(key string) bool, lagging func(kind string, keys int)) error {
	defer si.changes.record()()
	live, err := f.listLive(ctx, si, shardSelector)
	if err != nil {
		return err
	}
	changes := si.changes.next()
	stale := behind(store, &si.changes, live, match)
	warn := time.NewTimer(lagWarning)
	defer warn.Stop()
	for len(stale) > 0 {
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: %d of its objects are still behind the apiserver: %w", si.res, len(stale), context.Cause(ctx))
		case <-warn.C:
			lagging(si.res.String(), len(stale))
		case <-changes:
			changes = si.changes.next()
			stillBehind(store, &si.changes, stale, live)
		}
	}
	return nil
}

// AwaitCurrent waits until every cache of the factory holds, for every key
// for which match is true, the apiserver's state as of the call or a newer
// one (see the top of freshness.go), or until ctx ends. A hold calls it
// before its first handler runs. While a cache lags for longer than a
// moment, the log and CacheLag name it. Partitioned caches are not
// checked: AddShards lists a new shard's objects afresh.
func (f *Ops) AwaitCurrent(ctx context.Context, match func(key string) bool) error {
	if f.caches == nil {
		return errOnBackend
	}
	if match == nil {
		match = func(string) bool { return true }
	}
	// A partitioned cache is current for a shard once AddShards has
	// listed it: it is not checked here (its full list would name every
	// other replica's objects as missing).
	informers := slices.DeleteFunc(f.caches.startedInformers(), func(si *sharedInformer) bool { return si.partitioned != nil })
	errs := make([]error, len(informers))
	var wg sync.WaitGroup
	for i, si := range informers {
		wg.Go(func() {
			errs[i] = f.caches.awaitCurrent(ctx, si, si.informer.GetStore(), "", match, func(kind string, keys int) {
				f.log.WithFields(map[string]any{"cache": kind, "behind": keys}).Warn("a new hold waits for a cache that lags the apiserver; no handler runs until it has caught up")
				f.caches.lag.note(kind, keys)
			})
			f.caches.lag.clear(si.res.String())
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("framework: caches not current: %w", err)
	}
	return nil
}

// CacheLag names the caches a hold waits for longer than a moment (see
// AwaitCurrent), or returns nil: /readyz shows it.
func (f *Ops) CacheLag() error {
	if f.caches == nil {
		return nil
	}
	return f.caches.lag.err()
}

// cacheLag is what AwaitCurrent waits for now: kind → objects behind.
type cacheLag struct {
	mu     sync.Mutex
	behind map[string]int
}

func (l *cacheLag) note(kind string, keys int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.behind == nil {
		l.behind = map[string]int{}
	}
	l.behind[kind] = keys
}

func (l *cacheLag) clear(kind string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.behind, kind)
}

func (l *cacheLag) err() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.behind) == 0 {
		return nil
	}
	parts := make([]string, 0, len(l.behind))
	for kind, n := range l.behind {
		parts = append(parts, fmt.Sprintf("%s (%d objects)", kind, n))
	}
	sort.Strings(parts)
	return fmt.Errorf("caches lag the apiserver: %s; a new hold runs no handler until they catch up", strings.Join(parts, ", "))
}
