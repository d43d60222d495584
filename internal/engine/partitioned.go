package engine

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/tools/cache"

	"github.com/rein-k8s/rein/internal/partition"
)

// partitionedInformer is the cache of a kind partitioned among the
// replicas of a sharded group: one informer per shard this replica holds,
// each listing and watching only its shard's range of the apiserver's
// hash (a shard selector, internal/partition), seen by the engine as one
// informer and one store. Shards come and go as the group moves them:
// AddShard lists and watches a shard and returns once its objects are in
// the cache and handed to every handler; DropShard stops its watch and
// forgets its objects, with no delete event (the objects still exist: the
// replica that takes the shard sees them).
//
// One informer per shard rather than one whose selector ORs the held
// ranges: a watch's selector cannot change, so a move would relist every
// held shard, and the relist would show the objects of a dropped shard as
// deleted. Per shard, a move lists one shard (docs/sharding.md has the
// figures).
//
// Event handlers, indexers, the transform and the watch error handler are
// installed on every shard's informer, present and future. Reads of the
// store gather from every held shard; a lookup by key asks each (a held
// shard count is small: shards / replicas).
type partitionedInformer struct {
	field string // partition.ByUID or ByNamespace
	n     int    // the group's shard count
	// newShard makes the informer of one shard: a list and watch with its
	// selector; shard -1 means every object (no selector).
	newShard func(shard int) cache.SharedIndexInformer
	// probe, when set, tells Run whether the apiserver applies shard
	// selectors (partition.Probe); it is retried until it answers.
	// Without support the cache holds every object in one informer (full
	// mode): AddShard waits for it, DropShard keeps it.
	probe func(ctx context.Context) (bool, error)
	// fallback is called once when Run finds no support (a log line).
	fallback func()
	// full is set by Run before it closes running: every object is cached
	// under the key -1 of shards.
	full bool

	mu     sync.RWMutex
	shards map[int]*shardInformer
	// warm are the shards cached ahead of a hold (SetWarm): DropShard
	// keeps them. The warmer (warmShards) lists those not cached yet.
	warm map[int]bool
	// adding counts the AddShards under way (pauseWarming): the warmer
	// starts no list while a takeover lists or checks its shards.
	adding int
	// warmWake wakes the warmer: a new warm set, or adding back at 0.
	warmWake  chan struct{}
	regs      []*partitionedRegistration
	indexers  cache.Indexers
	transform cache.TransformFunc
	onError   cache.WatchErrorHandlerWithContext
	runCtx    context.Context // set by Run
	running   chan struct{}   // closed by Run
	stopped   bool
	wg        sync.WaitGroup

	// where records the shard of each key as its object passes the
	// transform, before the store and the handlers see it, so that a key
	// whose object was just deleted still names its shard when a worker
	// takes it (see ShardOfKey).
	whereMu sync.Mutex
	where   map[string]int
}

// shardStore returns the store of shard s's informer.
func (p *partitionedInformer) shardStore(s int) (cache.Store, bool) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	si, ok := p.shards[s]
	if !ok {
		return nil, false
	}
	return si.inf.GetStore(), true
}

// shardInformer is one held shard's informer.
type shardInformer struct {
	inf    cache.SharedIndexInformer
	cancel context.CancelFunc // nil until it runs
	done   chan struct{}      // closed when it has stopped
}

var (
	_ cache.SharedIndexInformer = (*partitionedInformer)(nil)
	_ cache.Indexer             = partitionedIndexer{}
)

func newPartitionedInformer(field string, n int, newShard func(shard int) cache.SharedIndexInformer, probe func(context.Context) (bool, error), fallback func()) *partitionedInformer {
	return &partitionedInformer{
		field: field, n: n, newShard: newShard, probe: probe, fallback: fallback,
		shards: map[int]*shardInformer{}, indexers: cache.Indexers{},
		running: make(chan struct{}), where: map[string]int{},
		warmWake: make(chan struct{}, 1),
	}
}

// allShards is the key of the one informer of a cache in full mode.
const allShards = -1

// AddShard starts caching shard s, if it is not yet, and returns once its
// informer has synced and every handler has received its objects, or with
// ctx's error. It waits for Run to start; in full mode it waits for the
// one informer of every object.
//
// held, when set, is asked under the lock DropShard takes, right before
// the shard's informer is made: when it says the shard is no longer held
// here, AddShard makes nothing and returns nil. A caller that drops a
// shard once it stops holding it (after held turns false) thus never
// leaves a range cached that an AddShard racing with the stop added, and
// a shard dropped while it was listed because it moved away is no error.
//
// reused reports that the shard's informer ran before this call (warm, or
// added twice): its cache may lag the apiserver, where a new informer's
// list is current.
func (p *partitionedInformer) AddShard(ctx context.Context, s int, held func(int) bool) (reused bool, err error) {
	if s < 0 || s >= p.n {
		return false, fmt.Errorf("framework: shard %d of %d", s, p.n)
	}
	// Run decides between shards and full mode before it closes running.
	select {
	case <-p.running:
	case <-ctx.Done():
		return false, fmt.Errorf("framework: waiting for the partitioned cache to run: %w", context.Cause(ctx))
	}
	if p.full {
		s = allShards
	}
	p.mu.Lock()
	if p.stopped {
		p.mu.Unlock()
		return false, errors.New("framework: the partitioned cache has stopped")
	}
	si, ok := p.shards[s]
	if !ok && held != nil && s != allShards && !held(s) {
		p.mu.Unlock()
		return false, nil
	}
	reused = ok && s != allShards
	if !ok {
		if si, err = p.newShardLocked(s); err != nil {
			p.mu.Unlock()
			return false, err
		}
		p.shards[s] = si
		if p.runCtx != nil {
			p.runLocked(si)
		}
	}
	checkers := []cache.DoneChecker{si.inf.HasSyncedChecker()}
	for _, r := range p.regs {
		checkers = append(checkers, r.byShard[s].HasSyncedChecker())
	}
	p.mu.Unlock()
	for _, c := range checkers {
		select {
		case <-c.Done():
		case <-si.done:
			if held != nil && !held(s) {
				return reused, nil // moved away while listed: nothing to add
			}
			return reused, fmt.Errorf("framework: shard %d was dropped before its cache synced", s)
		case <-ctx.Done():
			return reused, fmt.Errorf("framework: waiting for the cache of shard %d: %w", s, context.Cause(ctx))
		}
	}
	return reused, nil
}

// SetWarm caches shards ahead of a hold, and stops caching the shards
// warm before that are neither in shards nor held (held says). A warm
// shard's objects are in the store and reach the handlers like a held
// shard's; the gate keeps their keys from running until the shard is held
// here. It does not wait for the lists: the warmer (warmShards) makes
// them, one at a time and never during an AddShards. In full mode it does
// nothing.
func (p *partitionedInformer) SetWarm(shards []int, held func(int) bool) {
	select {
	case <-p.running:
	default:
		return // not running yet: the member has no shards either
	}
	if p.full {
		return
	}
	want := make(map[int]bool, len(shards))
	for _, s := range shards {
		if s >= 0 && s < p.n {
			want[s] = true
		}
	}
	var cold []int
	p.mu.Lock()
	if p.stopped {
		p.mu.Unlock()
		return
	}
	for s := range p.warm {
		if !want[s] && !held(s) {
			cold = append(cold, s)
		}
	}
	p.warm = want
	p.mu.Unlock()
	p.wakeWarmer()
	for _, s := range cold {
		p.DropShard(s)
	}
}

// wakeWarmer tells the warmer to look for a warm shard to list.
func (p *partitionedInformer) wakeWarmer() {
	select {
	case p.warmWake <- struct{}{}:
	default: // a wake is pending already
	}
}

// pauseWarming keeps the warmer from starting a list until the returned
// func is called: AddShards calls it for its lists and checks.
//
// Why: the shards next in line change when a member leaves, at the very
// moment the survivors take its shards, and each survivor is then next in
// line for new ones. Listed at once, those warm lists (at 100k objects,
// several shards of 5,000 per survivor) compete with the takeover's
// lists, checks and handlers for the apiserver and the CPU, and made a
// warm takeover slower than a cold one (docs/sharding.md, "Measured at
// 100k objects").
func (p *partitionedInformer) pauseWarming() (resume func()) {
	p.mu.Lock()
	p.adding++
	p.mu.Unlock()
	return func() {
		p.mu.Lock()
		p.adding--
		idle := p.adding == 0
		p.mu.Unlock()
		if idle {
			p.wakeWarmer()
		}
	}
}

// warmShards is the warmer: until ctx ends it lists the warm shards not
// cached yet, lowest first, one at a time (the next once the last has
// synced), and none while an AddShards is under way. Run starts it unless
// the cache is in full mode.
func (p *partitionedInformer) warmShards(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-p.warmWake:
		}
		for si := p.startWarmShard(); si != nil; si = p.startWarmShard() {
			select {
			case <-si.inf.HasSyncedChecker().Done():
			case <-si.done: // dropped or stopped before it synced
			case <-ctx.Done():
				return
			}
		}
	}
}

// startWarmShard makes and runs the informer of the lowest warm shard not
// cached, and returns it; nil when there is none, or while an AddShards
// is under way (its end wakes the warmer again).
func (p *partitionedInformer) startWarmShard() *shardInformer {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stopped || p.adding > 0 {
		return nil
	}
	for _, s := range slices.Sorted(maps.Keys(p.warm)) {
		if _, cached := p.shards[s]; cached {
			continue
		}
		si, err := p.newShardLocked(s)
		if err != nil {
			utilruntime.HandleError(fmt.Errorf("partitioned cache: cannot warm shard %d: %w", s, err))
			delete(p.warm, s)
			continue
		}
		p.shards[s] = si
		p.runLocked(si)
		return si
	}
	return nil
}

// newShardLocked makes shard s's informer with everything installed so
// far.
func (p *partitionedInformer) newShardLocked(s int) (*shardInformer, error) {
	inf := p.newShard(s)
	si := &shardInformer{inf: inf, done: make(chan struct{})}
	user := p.transform
	if err := inf.SetTransform(func(obj any) (any, error) {
		p.remember(obj, s)
		if user == nil {
			return obj, nil
		}
		return user(obj)
	}); err != nil {
		return nil, err
	}
	if len(p.indexers) > 0 {
		if err := inf.AddIndexers(p.indexers); err != nil {
			return nil, err
		}
	}
	if p.onError != nil {
		if err := inf.SetWatchErrorHandlerWithContext(p.onError); err != nil {
			return nil, err
		}
	}
	for _, r := range p.regs {
		reg, err := r.add(inf)
		if err != nil {
			for _, r := range p.regs {
				if reg, ok := r.byShard[s]; ok {
					_ = inf.RemoveEventHandler(reg)
					delete(r.byShard, s)
				}
			}
			return nil, err
		}
		r.byShard[s] = reg
	}
	return si, nil
}

// remember records the shard of obj's key (the transform's hook); in full
// mode (s is allShards) it computes it.
func (p *partitionedInformer) remember(obj any, s int) {
	if _, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		return // its key was recorded when it entered the cache
	}
	key, err := cache.MetaNamespaceKeyFunc(obj)
	if err != nil {
		return
	}
	if s == allShards {
		ro, ok := obj.(runtime.Object)
		if !ok {
			return
		}
		if s, err = partition.Of(ro, p.field, p.n); err != nil {
			return
		}
	}
	p.whereMu.Lock()
	p.where[key] = s
	p.whereMu.Unlock()
}

// DropShard stops caching shard s and forgets its objects; handlers get
// no event for them. It returns once the shard's informer has stopped. In
// full mode, and for a warm shard (SetWarm), it does nothing.
func (p *partitionedInformer) DropShard(s int) {
	if s == allShards {
		return
	}
	p.mu.Lock()
	if p.warm[s] {
		p.mu.Unlock()
		return // kept warm: this replica is next in line for it
	}
	si, ok := p.shards[s]
	if ok {
		delete(p.shards, s)
		for _, r := range p.regs {
			delete(r.byShard, s)
		}
	}
	p.mu.Unlock()
	if !ok {
		return
	}
	if si.cancel != nil {
		si.cancel()
		<-si.done
	} else {
		close(si.done)
	}
	p.whereMu.Lock()
	maps.DeleteFunc(p.where, func(_ string, shard int) bool { return shard == s })
	p.whereMu.Unlock()
}

// Shards returns the shards cached, in order; [-1] in full mode.
func (p *partitionedInformer) Shards() []int {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return slices.Sorted(maps.Keys(p.shards))
}

// ShardOfKey returns the shard of key's object: the held shard whose cache
// holds it or last held it (a deleted object's key keeps its shard until
// Forget); ok is false for a key of no held shard, whose object another
// replica caches, or that never existed.
func (p *partitionedInformer) ShardOfKey(key string) (int, bool) {
	p.whereMu.Lock()
	s, ok := p.where[key]
	p.whereMu.Unlock()
	if ok {
		return s, true
	}
	// The transform records every key before its object is stored, so a
	// key missing from where is in no store; ask the stores anyway, for an
	// object stored by another path (a test's Add).
	for _, si := range p.held() {
		if obj, ok, _ := si.inf.GetIndexer().GetByKey(key); ok {
			if si.shard == allShards {
				ro, isObj := obj.(runtime.Object)
				if !isObj {
					return 0, false
				}
				s, err := partition.Of(ro, p.field, p.n)
				return s, err == nil
			}
			return si.shard, true
		}
	}
	return 0, false
}

// Forget drops the recorded shard of key once its object is in no held
// shard's cache: call it after a deleted object's handlers have run.
func (p *partitionedInformer) Forget(key string) {
	for _, si := range p.held() {
		if _, ok, _ := si.inf.GetIndexer().GetByKey(key); ok {
			return
		}
	}
	p.whereMu.Lock()
	delete(p.where, key)
	p.whereMu.Unlock()
}

type heldShard struct {
	shard int
	inf   cache.SharedIndexInformer
}

// held returns the held shards' informers, in shard order.
func (p *partitionedInformer) held() []heldShard {
	p.mu.RLock()
	defer p.mu.RUnlock()
	out := make([]heldShard, 0, len(p.shards))
	for s, si := range p.shards {
		out = append(out, heldShard{s, si.inf})
	}
	slices.SortFunc(out, func(a, b heldShard) int { return a.shard - b.shard })
	return out
}

func (p *partitionedInformer) runLocked(si *shardInformer) {
	ctx, cancel := context.WithCancel(p.runCtx)
	si.cancel = cancel
	p.wg.Go(func() {
		defer close(si.done)
		si.inf.RunWithContext(ctx)
	})
}

func (p *partitionedInformer) Run(stopCh <-chan struct{}) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-stopCh:
			cancel()
		case <-ctx.Done():
		}
	}()
	p.RunWithContext(ctx)
}

// RunWithContext runs the held shards' informers, and those added later,
// until ctx ends, and returns when all of them have.
func (p *partitionedInformer) RunWithContext(ctx context.Context) {
	full := false
	if p.probe != nil {
		supported, ok := p.awaitProbe(ctx)
		if !ok {
			// Stopped before it ran: AddShard and the sync checkers
			// see it stopped, with nothing held.
			p.mu.Lock()
			p.stopped = true
			if p.runCtx == nil {
				p.runCtx = ctx
				close(p.running)
			}
			p.mu.Unlock()
			return
		}
		full = !supported
	}
	p.mu.Lock()
	if p.runCtx != nil {
		p.mu.Unlock()
		return
	}
	p.runCtx = ctx
	if full {
		p.full = true
		if p.fallback != nil {
			p.fallback()
		}
		si, err := p.newShardLocked(allShards)
		if err != nil {
			// Only a handler that refuses a second informer can fail
			// here; the cache then holds nothing and never syncs.
			utilruntime.HandleErrorWithContext(ctx, err, "partitioned cache: cannot make the informer of every object")
		} else {
			p.shards[allShards] = si
		}
	}
	for _, si := range p.shards {
		p.runLocked(si)
	}
	if !full {
		p.wg.Go(func() { p.warmShards(ctx) })
	}
	close(p.running)
	p.mu.Unlock()
	<-ctx.Done()
	p.mu.Lock()
	p.stopped = true
	p.mu.Unlock()
	p.wg.Wait()
}

// HasSynced: running, and every held shard synced (no shard held is
// synced: there is nothing to list).
// awaitProbe calls probe until it answers (every second at most), or ctx
// ends (ok false).
func (p *partitionedInformer) awaitProbe(ctx context.Context) (supported, ok bool) {
	backoff := wait.Backoff{Duration: 100 * time.Millisecond, Factor: 2, Steps: 100, Cap: time.Second}
	for {
		supported, err := p.probe(ctx)
		if err == nil {
			return supported, true
		}
		utilruntime.HandleErrorWithContext(ctx, err, "partitioned cache: cannot tell whether the apiserver applies shard selectors; retrying")
		t := time.NewTimer(backoff.Step())
		select {
		case <-ctx.Done():
			t.Stop()
			return false, false
		case <-t.C:
		}
	}
}

func (p *partitionedInformer) HasSynced() bool {
	select {
	case <-p.running:
	default:
		return false
	}
	for _, si := range p.held() {
		if !si.inf.HasSynced() {
			return false
		}
	}
	return true
}

func (p *partitionedInformer) HasSyncedChecker() cache.DoneChecker {
	return &heldDone{p: p, name: "partitioned cache", of: func(si *shardInformer, _ int) cache.DoneChecker { return si.inf.HasSyncedChecker() }}
}

// heldDone is done once Run has started and every shard held then (when
// Done is first called) is synced or dropped. Its goroutine, started by
// the first Done, ends then.
type heldDone struct {
	p    *partitionedInformer
	name string
	of   func(si *shardInformer, shard int) cache.DoneChecker

	once sync.Once
	done chan struct{}
}

func (h *heldDone) Name() string { return h.name }

func (h *heldDone) Done() <-chan struct{} {
	h.once.Do(func() {
		h.done = make(chan struct{})
		go func() {
			defer close(h.done)
			<-h.p.running
			type wait struct {
				c    cache.DoneChecker
				gone chan struct{}
			}
			h.p.mu.RLock()
			var waits []wait
			for s, si := range h.p.shards {
				if c := h.of(si, s); c != nil {
					waits = append(waits, wait{c, si.done})
				}
			}
			h.p.mu.RUnlock()
			for _, w := range waits {
				select {
				case <-w.c.Done():
				case <-w.gone:
				}
			}
		}()
	})
	return h.done
}

// LastSyncResourceVersion is "": each shard's list has its own.
func (p *partitionedInformer) LastSyncResourceVersion() string { return "" }

func (p *partitionedInformer) AddEventHandler(h cache.ResourceEventHandler) (cache.ResourceEventHandlerRegistration, error) {
	return p.addHandler(func(inf cache.SharedIndexInformer) (cache.ResourceEventHandlerRegistration, error) {
		return inf.AddEventHandler(h)
	})
}

func (p *partitionedInformer) AddEventHandlerWithResyncPeriod(h cache.ResourceEventHandler, resync time.Duration) (cache.ResourceEventHandlerRegistration, error) {
	return p.addHandler(func(inf cache.SharedIndexInformer) (cache.ResourceEventHandlerRegistration, error) {
		return inf.AddEventHandlerWithResyncPeriod(h, resync)
	})
}

func (p *partitionedInformer) AddEventHandlerWithOptions(h cache.ResourceEventHandler, opts cache.HandlerOptions) (cache.ResourceEventHandlerRegistration, error) {
	return p.addHandler(func(inf cache.SharedIndexInformer) (cache.ResourceEventHandlerRegistration, error) {
		return inf.AddEventHandlerWithOptions(h, opts)
	})
}

// partitionedRegistration is one handler on every held shard's informer;
// byShard is guarded by the informer's mu.
type partitionedRegistration struct {
	p       *partitionedInformer
	add     func(cache.SharedIndexInformer) (cache.ResourceEventHandlerRegistration, error)
	byShard map[int]cache.ResourceEventHandlerRegistration
}

func (p *partitionedInformer) addHandler(add func(cache.SharedIndexInformer) (cache.ResourceEventHandlerRegistration, error)) (cache.ResourceEventHandlerRegistration, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	r := &partitionedRegistration{p: p, add: add, byShard: map[int]cache.ResourceEventHandlerRegistration{}}
	for s, si := range p.shards {
		reg, err := add(si.inf)
		if err != nil {
			for s, reg := range r.byShard {
				_ = p.shards[s].inf.RemoveEventHandler(reg)
			}
			return nil, fmt.Errorf("shard %d: %w", s, err)
		}
		r.byShard[s] = reg
	}
	p.regs = append(p.regs, r)
	return r, nil
}

func (p *partitionedInformer) RemoveEventHandler(handle cache.ResourceEventHandlerRegistration) error {
	r, ok := handle.(*partitionedRegistration)
	if !ok || r.p != p {
		return fmt.Errorf("framework: registration %T was not made by this informer", handle)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.regs = slices.DeleteFunc(p.regs, func(x *partitionedRegistration) bool { return x == r })
	var errs []error
	for s, reg := range r.byShard {
		if si, ok := p.shards[s]; ok {
			errs = append(errs, si.inf.RemoveEventHandler(reg))
		}
	}
	clear(r.byShard)
	return errors.Join(errs...)
}

func (r *partitionedRegistration) HasSynced() bool {
	r.p.mu.RLock()
	defer r.p.mu.RUnlock()
	for _, reg := range r.byShard {
		if !reg.HasSynced() {
			return false
		}
	}
	return true
}

func (r *partitionedRegistration) HasSyncedChecker() cache.DoneChecker {
	return &heldDone{p: r.p, name: "handler of a partitioned cache", of: func(_ *shardInformer, s int) cache.DoneChecker {
		if reg, ok := r.byShard[s]; ok {
			return reg.HasSyncedChecker()
		}
		return nil
	}}
}

func (p *partitionedInformer) SetWatchErrorHandler(h cache.WatchErrorHandler) error {
	return p.SetWatchErrorHandlerWithContext(func(_ context.Context, r *cache.Reflector, err error) { h(r, err) })
}

func (p *partitionedInformer) SetWatchErrorHandlerWithContext(h cache.WatchErrorHandlerWithContext) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.runCtx != nil {
		return errors.New("framework: the watch error handler is set before the cache runs")
	}
	p.onError = h
	return nil
}

func (p *partitionedInformer) SetTransform(t cache.TransformFunc) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.runCtx != nil {
		return errors.New("framework: the transform is set before the cache runs")
	}
	p.transform = t
	return nil
}

func (p *partitionedInformer) IsStopped() bool {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.stopped
}

func (p *partitionedInformer) AddIndexers(indexers cache.Indexers) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	for name := range indexers {
		if _, ok := p.indexers[name]; ok {
			return fmt.Errorf("framework: indexer %q already exists", name)
		}
	}
	for s, si := range p.shards {
		if err := si.inf.AddIndexers(indexers); err != nil {
			return fmt.Errorf("shard %d: %w", s, err)
		}
	}
	maps.Copy(p.indexers, indexers)
	return nil
}

func (p *partitionedInformer) GetStore() cache.Store           { return partitionedIndexer{p} }
func (p *partitionedInformer) GetIndexer() cache.Indexer       { return partitionedIndexer{p} }
func (p *partitionedInformer) GetController() cache.Controller { return partitionedController{p} }

type partitionedController struct{ p *partitionedInformer }

func (c partitionedController) RunWithContext(ctx context.Context)  { c.p.RunWithContext(ctx) }
func (c partitionedController) Run(stopCh <-chan struct{})          { c.p.Run(stopCh) }
func (c partitionedController) HasSynced() bool                     { return c.p.HasSynced() }
func (c partitionedController) HasSyncedChecker() cache.DoneChecker { return c.p.HasSyncedChecker() }
func (c partitionedController) LastSyncResourceVersion() string     { return "" }

// partitionedIndexer is the store of a partitionedInformer: reads gather
// from every held shard; an object written goes to its shard's store (by
// its partition field), which must be held.
type partitionedIndexer struct{ p *partitionedInformer }

func (s partitionedIndexer) storeOf(obj any) (cache.Indexer, error) {
	if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = d.Obj
	}
	ro, ok := obj.(runtime.Object)
	if !ok {
		return nil, fmt.Errorf("framework: %T is not an API object", obj)
	}
	shard, err := partition.Of(ro, s.p.field, s.p.n)
	if err != nil {
		return nil, err
	}
	s.p.mu.RLock()
	si, ok := s.p.shards[shard]
	s.p.mu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("framework: shard %d is not cached here", shard)
	}
	return si.inf.GetIndexer(), nil
}

func (s partitionedIndexer) Add(obj any) error {
	st, err := s.storeOf(obj)
	if err != nil {
		return err
	}
	return st.Add(obj)
}

func (s partitionedIndexer) Update(obj any) error {
	st, err := s.storeOf(obj)
	if err != nil {
		return err
	}
	return st.Update(obj)
}

func (s partitionedIndexer) Delete(obj any) error {
	st, err := s.storeOf(obj)
	if err != nil {
		return err
	}
	return st.Delete(obj)
}

func (s partitionedIndexer) List() []any {
	return gatherHeld(s.p, func(st cache.Indexer) []any { return st.List() })
}

func (s partitionedIndexer) ListKeys() []string {
	return gatherHeld(s.p, func(st cache.Indexer) []string { return st.ListKeys() })
}

func (s partitionedIndexer) Get(obj any) (any, bool, error) {
	key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj)
	if err != nil {
		return nil, false, err
	}
	return s.GetByKey(key)
}

func (s partitionedIndexer) GetByKey(key string) (any, bool, error) {
	for _, si := range s.p.held() {
		if item, ok, err := si.inf.GetIndexer().GetByKey(key); ok || err != nil {
			return item, ok, err
		}
	}
	return nil, false, nil
}

// Replace is refused: each shard's reflector replaces its own store.
func (s partitionedIndexer) Replace([]any, string) error {
	return errors.New("framework: a partitioned cache is replaced shard by shard, by its informers")
}

func (s partitionedIndexer) Resync() error {
	for _, si := range s.p.held() {
		if err := si.inf.GetIndexer().Resync(); err != nil {
			return err
		}
	}
	return nil
}

func (s partitionedIndexer) LastStoreSyncResourceVersion() string { return "" }

// Bookmark does nothing: each shard's reflector bookmarks its own store.
func (s partitionedIndexer) Bookmark(string) {}

func (s partitionedIndexer) Index(name string, obj any) ([]any, error) {
	return gatherHeldErr(s.p, func(st cache.Indexer) ([]any, error) { return st.Index(name, obj) })
}

func (s partitionedIndexer) IndexKeys(name, value string) ([]string, error) {
	return gatherHeldErr(s.p, func(st cache.Indexer) ([]string, error) { return st.IndexKeys(name, value) })
}

func (s partitionedIndexer) ListIndexFuncValues(name string) []string {
	seen := map[string]bool{}
	var out []string
	for _, v := range gatherHeld(s.p, func(st cache.Indexer) []string { return st.ListIndexFuncValues(name) }) {
		if !seen[v] {
			seen[v] = true
			out = append(out, v)
		}
	}
	return out
}

func (s partitionedIndexer) ByIndex(name, value string) ([]any, error) {
	return gatherHeldErr(s.p, func(st cache.Indexer) ([]any, error) { return st.ByIndex(name, value) })
}

func (s partitionedIndexer) GetIndexers() cache.Indexers {
	s.p.mu.RLock()
	defer s.p.mu.RUnlock()
	return maps.Clone(s.p.indexers)
}

func (s partitionedIndexer) AddIndexers(indexers cache.Indexers) error {
	return s.p.AddIndexers(indexers)
}

func gatherHeld[E any](p *partitionedInformer, lookup func(cache.Indexer) []E) []E {
	var out []E
	for _, si := range p.held() {
		out = append(out, lookup(si.inf.GetIndexer())...)
	}
	return out
}

func gatherHeldErr[E any](p *partitionedInformer, lookup func(cache.Indexer) ([]E, error)) ([]E, error) {
	var out []E
	for _, si := range p.held() {
		got, err := lookup(si.inf.GetIndexer())
		if err != nil {
			return nil, err
		}
		out = append(out, got...)
	}
	return out, nil
}
