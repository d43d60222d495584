package engine

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/client-go/tools/cache"
)

// namespacesInformer is the shared informer of a namespaced kind cached
// in a list of namespaces: one informer per namespace (one list and one
// watch each, as the apiserver cannot select several namespaces in one
// request), seen by the engine as one informer and one store. Event
// handlers, indexers, transforms and error handlers are installed on every
// namespace's informer; reads of the store go to the namespace a key
// names, or to all of them.
//
// One list+watch per namespace rather than one over all namespaces
// filtered in the process: the point of naming namespaces is that the
// objects of the others are neither sent nor decoded nor kept.
type namespacesInformer struct {
	names []string // sorted
	byNS  map[string]cache.SharedIndexInformer
	// synced is done when every namespace's informer has synced.
	synced *allDone
}

var (
	_ cache.SharedIndexInformer = (*namespacesInformer)(nil)
	_ cache.Indexer             = namespacesIndexer{}
)

func newNamespacesInformer(namespaces []string, informerOf func(namespace string) cache.SharedIndexInformer) *namespacesInformer {
	names := append([]string(nil), namespaces...)
	sort.Strings(names)
	m := &namespacesInformer{names: names, byNS: make(map[string]cache.SharedIndexInformer, len(names))}
	checkers := make([]cache.DoneChecker, 0, len(names))
	for _, ns := range names {
		m.byNS[ns] = informerOf(ns)
		checkers = append(checkers, m.byNS[ns].HasSyncedChecker())
	}
	m.synced = newAllDone("caches of namespaces "+strings.Join(names, ","), checkers)
	return m
}

func (m *namespacesInformer) each(do func(ns string, inf cache.SharedIndexInformer) error) error {
	for _, ns := range m.names {
		if err := do(ns, m.byNS[ns]); err != nil {
			return fmt.Errorf("namespace %s: %w", ns, err)
		}
	}
	return nil
}

func (m *namespacesInformer) AddEventHandler(h cache.ResourceEventHandler) (cache.ResourceEventHandlerRegistration, error) {
	return m.addHandler(func(inf cache.SharedIndexInformer) (cache.ResourceEventHandlerRegistration, error) {
		return inf.AddEventHandler(h)
	})
}

func (m *namespacesInformer) AddEventHandlerWithResyncPeriod(h cache.ResourceEventHandler, resync time.Duration) (cache.ResourceEventHandlerRegistration, error) {
	return m.addHandler(func(inf cache.SharedIndexInformer) (cache.ResourceEventHandlerRegistration, error) {
		return inf.AddEventHandlerWithResyncPeriod(h, resync)
	})
}

func (m *namespacesInformer) AddEventHandlerWithOptions(h cache.ResourceEventHandler, opts cache.HandlerOptions) (cache.ResourceEventHandlerRegistration, error) {
	return m.addHandler(func(inf cache.SharedIndexInformer) (cache.ResourceEventHandlerRegistration, error) {
		return inf.AddEventHandlerWithOptions(h, opts)
	})
}

// addHandler registers a handler on every namespace's informer; if one
// refuses, those already made are removed again.
func (m *namespacesInformer) addHandler(add func(cache.SharedIndexInformer) (cache.ResourceEventHandlerRegistration, error)) (cache.ResourceEventHandlerRegistration, error) {
	reg := &namespacesRegistration{byNS: map[string]cache.ResourceEventHandlerRegistration{}}
	err := m.each(func(ns string, inf cache.SharedIndexInformer) error {
		r, err := add(inf)
		if err == nil {
			reg.byNS[ns] = r
		}
		return err
	})
	if err != nil {
		_ = m.RemoveEventHandler(reg)
		return nil, err
	}
	checkers := make([]cache.DoneChecker, 0, len(m.names))
	for _, ns := range m.names {
		checkers = append(checkers, reg.byNS[ns].HasSyncedChecker())
	}
	reg.synced = newAllDone("handler in namespaces "+strings.Join(m.names, ","), checkers)
	return reg, nil
}

func (m *namespacesInformer) RemoveEventHandler(handle cache.ResourceEventHandlerRegistration) error {
	reg, ok := handle.(*namespacesRegistration)
	if !ok {
		return fmt.Errorf("framework: registration %T was not made by this informer", handle)
	}
	return m.each(func(ns string, inf cache.SharedIndexInformer) error {
		if r, ok := reg.byNS[ns]; ok {
			return inf.RemoveEventHandler(r)
		}
		return nil
	})
}

func (m *namespacesInformer) GetStore() cache.Store           { return namespacesIndexer{m} }
func (m *namespacesInformer) GetIndexer() cache.Indexer       { return namespacesIndexer{m} }
func (m *namespacesInformer) GetController() cache.Controller { return namespacesController{m} }

func (m *namespacesInformer) Run(stopCh <-chan struct{}) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-stopCh:
			cancel()
		case <-ctx.Done():
		}
	}()
	m.RunWithContext(ctx)
}

// RunWithContext runs every namespace's informer until ctx ends and
// returns when all of them have.
func (m *namespacesInformer) RunWithContext(ctx context.Context) {
	var wg sync.WaitGroup
	for _, ns := range m.names {
		inf := m.byNS[ns]
		wg.Go(func() { inf.RunWithContext(ctx) })
	}
	wg.Wait()
}

func (m *namespacesInformer) HasSynced() bool {
	return everyOne(m.byNS, cache.SharedIndexInformer.HasSynced)
}

func (m *namespacesInformer) HasSyncedChecker() cache.DoneChecker { return m.synced }

// LastSyncResourceVersion is "": each namespace's list has its own, and
// no one of them stands for the others.
func (m *namespacesInformer) LastSyncResourceVersion() string { return "" }

func (m *namespacesInformer) SetWatchErrorHandler(h cache.WatchErrorHandler) error {
	return m.each(func(_ string, inf cache.SharedIndexInformer) error { return inf.SetWatchErrorHandler(h) })
}

func (m *namespacesInformer) SetWatchErrorHandlerWithContext(h cache.WatchErrorHandlerWithContext) error {
	return m.each(func(_ string, inf cache.SharedIndexInformer) error { return inf.SetWatchErrorHandlerWithContext(h) })
}

func (m *namespacesInformer) SetTransform(t cache.TransformFunc) error {
	return m.each(func(_ string, inf cache.SharedIndexInformer) error { return inf.SetTransform(t) })
}

func (m *namespacesInformer) IsStopped() bool {
	return everyOne(m.byNS, cache.SharedIndexInformer.IsStopped)
}

func (m *namespacesInformer) AddIndexers(indexers cache.Indexers) error {
	return m.each(func(_ string, inf cache.SharedIndexInformer) error { return inf.AddIndexers(indexers) })
}

// namespacesRegistration is one handler's registration on every
// namespace's informer.
type namespacesRegistration struct {
	byNS   map[string]cache.ResourceEventHandlerRegistration
	synced *allDone
}

func (r *namespacesRegistration) HasSynced() bool {
	return everyOne(r.byNS, cache.ResourceEventHandlerRegistration.HasSynced)
}

// everyOne reports whether is holds for every namespace's value in byNS.
func everyOne[V any](byNS map[string]V, is func(V) bool) bool {
	for _, v := range byNS {
		if !is(v) {
			return false
		}
	}
	return true
}

func (r *namespacesRegistration) HasSyncedChecker() cache.DoneChecker { return r.synced }

// allDone is done when each of its checkers is. Its channel is closed by
// a goroutine started on the first Done call, which ends once the last
// checker is done (client-go's informers close theirs when they sync).
// There is one per informer and one per handler registration, made with
// them, so waiting again after a sync timeout starts no further
// goroutine.
type allDone struct {
	name     string
	checkers []cache.DoneChecker
	once     sync.Once
	done     chan struct{}
}

func newAllDone(name string, checkers []cache.DoneChecker) *allDone {
	return &allDone{name: name, checkers: checkers, done: make(chan struct{})}
}

func (a *allDone) Name() string { return a.name }

func (a *allDone) Done() <-chan struct{} {
	a.once.Do(func() {
		go func() {
			for _, c := range a.checkers {
				<-c.Done()
			}
			close(a.done)
		}()
	})
	return a.done
}

type namespacesController struct{ m *namespacesInformer }

func (c namespacesController) RunWithContext(ctx context.Context)  { c.m.RunWithContext(ctx) }
func (c namespacesController) Run(stopCh <-chan struct{})          { c.m.Run(stopCh) }
func (c namespacesController) HasSynced() bool                     { return c.m.HasSynced() }
func (c namespacesController) HasSyncedChecker() cache.DoneChecker { return c.m.HasSyncedChecker() }
func (c namespacesController) LastSyncResourceVersion() string     { return "" }

// namespacesIndexer is the store of a namespacesInformer: a key, or an
// object, is looked up in its namespace's store; lists and index lookups
// gather from every namespace (but an index lookup by namespace asks only
// that one).
type namespacesIndexer struct{ m *namespacesInformer }

func (s namespacesIndexer) storeOf(obj any) (cache.Indexer, error) {
	if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = d.Obj
	}
	o, err := meta.Accessor(obj)
	if err != nil {
		return nil, err
	}
	inf, ok := s.m.byNS[o.GetNamespace()]
	if !ok {
		return nil, fmt.Errorf("framework: namespace %q is not cached (the cache holds %s)", o.GetNamespace(), strings.Join(s.m.names, ", "))
	}
	return inf.GetIndexer(), nil
}

func (s namespacesIndexer) Add(obj any) error {
	st, err := s.storeOf(obj)
	if err != nil {
		return err
	}
	return st.Add(obj)
}

func (s namespacesIndexer) Update(obj any) error {
	st, err := s.storeOf(obj)
	if err != nil {
		return err
	}
	return st.Update(obj)
}

func (s namespacesIndexer) Delete(obj any) error {
	st, err := s.storeOf(obj)
	if err != nil {
		return err
	}
	return st.Delete(obj)
}

func (s namespacesIndexer) List() []any {
	var out []any
	for _, ns := range s.m.names {
		out = append(out, s.m.byNS[ns].GetIndexer().List()...)
	}
	return out
}

func (s namespacesIndexer) ListKeys() []string {
	var out []string
	for _, ns := range s.m.names {
		out = append(out, s.m.byNS[ns].GetIndexer().ListKeys()...)
	}
	return out
}

func (s namespacesIndexer) Get(obj any) (any, bool, error) {
	st, err := s.storeOf(obj)
	if err != nil {
		return nil, false, nil // not cached here, so not found
	}
	return st.Get(obj)
}

func (s namespacesIndexer) GetByKey(key string) (any, bool, error) {
	ns, _, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil, false, err
	}
	inf, ok := s.m.byNS[ns]
	if !ok {
		return nil, false, nil
	}
	return inf.GetIndexer().GetByKey(key)
}

// Replace replaces each namespace's objects with those of list in it.
func (s namespacesIndexer) Replace(list []any, rv string) error {
	split := make(map[string][]any, len(s.m.names))
	for _, obj := range list {
		o, err := meta.Accessor(obj)
		if err != nil {
			return err
		}
		if _, ok := s.m.byNS[o.GetNamespace()]; !ok {
			return fmt.Errorf("framework: namespace %q is not cached", o.GetNamespace())
		}
		split[o.GetNamespace()] = append(split[o.GetNamespace()], obj)
	}
	for _, ns := range s.m.names {
		if err := s.m.byNS[ns].GetIndexer().Replace(split[ns], rv); err != nil {
			return err
		}
	}
	return nil
}

func (s namespacesIndexer) Resync() error {
	for _, ns := range s.m.names {
		if err := s.m.byNS[ns].GetIndexer().Resync(); err != nil {
			return err
		}
	}
	return nil
}

// LastStoreSyncResourceVersion is "", as for the informer.
func (s namespacesIndexer) LastStoreSyncResourceVersion() string { return "" }

// Bookmark does nothing: each namespace's reflector bookmarks its own
// store.
func (s namespacesIndexer) Bookmark(string) {}

func (s namespacesIndexer) Index(name string, obj any) ([]any, error) {
	return gather(s, s.m.names, func(st cache.Indexer) ([]any, error) { return st.Index(name, obj) })
}

func (s namespacesIndexer) IndexKeys(name, value string) ([]string, error) {
	return gather(s, s.indexed(name, value), func(st cache.Indexer) ([]string, error) { return st.IndexKeys(name, value) })
}

func (s namespacesIndexer) ListIndexFuncValues(name string) []string {
	seen := map[string]bool{}
	var out []string
	for _, ns := range s.m.names {
		for _, v := range s.m.byNS[ns].GetIndexer().ListIndexFuncValues(name) {
			if !seen[v] {
				seen[v] = true
				out = append(out, v)
			}
		}
	}
	return out
}

func (s namespacesIndexer) ByIndex(name, value string) ([]any, error) {
	return gather(s, s.indexed(name, value), func(st cache.Indexer) ([]any, error) { return st.ByIndex(name, value) })
}

// gather joins what lookup returns from the stores of namespaces, in
// their order.
func gather[E any](s namespacesIndexer, namespaces []string, lookup func(cache.Indexer) ([]E, error)) ([]E, error) {
	var out []E
	for _, ns := range namespaces {
		got, err := lookup(s.m.byNS[ns].GetIndexer())
		if err != nil {
			return nil, err
		}
		out = append(out, got...)
	}
	return out, nil
}

// indexed names the namespaces an index lookup asks: only value's for
// the namespace index, every one otherwise.
func (s namespacesIndexer) indexed(name, value string) []string {
	if name == cache.NamespaceIndex {
		if _, ok := s.m.byNS[value]; !ok {
			return nil
		}
		return []string{value}
	}
	return s.m.names
}

func (s namespacesIndexer) GetIndexers() cache.Indexers {
	return s.m.byNS[s.m.names[0]].GetIndexer().GetIndexers()
}

func (s namespacesIndexer) AddIndexers(indexers cache.Indexers) error {
	return s.m.AddIndexers(indexers)
}
