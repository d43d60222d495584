package engine

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/rein-k8s/rein/internal/partition"
)

// Partitioned returns the shard count a factory partitions its
// controllers' kinds into, 0 when it does not.
func (f *Ops) Partitioned() int {
	if f.caches == nil {
		return 0
	}
	f.caches.mu.Lock()
	defer f.caches.mu.Unlock()
	if f.caches.partition == nil {
		return 0
	}
	return f.caches.partition.n
}

// Partition makes the caches of this factory's controllers' kinds
// partitioned among the replicas of a sharded group of n shards, by field
// (partition.ByUID or partition.ByNamespace): each replica lists and
// watches only the objects of the shards it holds (AddShards, DropShards).
// Other kinds (related, children) stay cached in full. It must be called
// before the first controller is made. When the apiserver ignores shard
// selectors (the feature gate ShardedListAndWatch is off), each
// partitioned kind is cached in full, and one line per kind says so.
func (f *Ops) Partition(field string, n int) error {
	if !partition.ValidField(field) {
		return fmt.Errorf("framework: partition by %q: want %s or %s", field, partition.ByUID, partition.ByNamespace)
	}
	if n <= 0 {
		return fmt.Errorf("framework: partition into %d shards", n)
	}
	if f.caches == nil {
		return errOnBackend
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.controllers) > 0 || f.started {
		return errors.New("framework: Partition after controllers were made: call it first")
	}
	log := f.log
	f.caches.mu.Lock()
	f.caches.partition = &partitionSpec{field: field, n: n, fallback: func(res Resource) {
		log.WithField("kind", res.String()).Warn("the apiserver ignores shard selectors (feature gate ShardedListAndWatch off): this kind is cached in full on every replica")
	}}
	f.caches.mu.Unlock()
	return nil
}

// partitionedCaches returns the factory's partitioned caches.
func (f *Ops) partitionedCaches() []*sharedInformer {
	if f.caches == nil {
		return nil
	}
	f.caches.mu.Lock()
	defer f.caches.mu.Unlock()
	var out []*sharedInformer
	for _, si := range f.caches.informers {
		if si.partitioned != nil {
			out = append(out, si)
		}
	}
	return out
}

// AddShards caches the objects of shards in every partitioned cache and
// returns once each has synced and handed them to its handlers, or with
// the errors. A shard for which held (when set) says no is skipped (see
// partitionedInformer.AddShard), and so is one dropped while it was
// listed because it moved away meanwhile.
//
// At most addShardsAtOnce lists run at once, and each shard asks held just
// before its list: a replica that holds many shards for a moment (the
// first of a group to start takes every shard until the others join)
// lists a few of them, not all, before the rest move away. Listing them
// all at once would cost that replica a full cache's peak memory, the
// thing partitioning saves.
//
// A shard cached before (warm, WarmShards) is not listed again: its cache
// is checked against a metadata list of the shard's range instead, as
// AwaitCurrent checks a full cache, since a replica that was stopped or
// cut off wakes with warm shards that miss the events of its sleep.
func (f *Ops) AddShards(ctx context.Context, shards []int, held func(int) bool) error {
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []error
	slots := make(chan struct{}, addShardsAtOnce)
	caches := f.partitionedCaches()
	for _, si := range caches {
		defer si.partitioned.pauseWarming()()
	}
	for _, si := range caches {
		p := si.partitioned
		for _, s := range shards {
			wg.Go(func() {
				select {
				case slots <- struct{}{}:
				case <-ctx.Done():
					mu.Lock()
					errs = append(errs, fmt.Errorf("framework: waiting to list shard %d: %w", s, context.Cause(ctx)))
					mu.Unlock()
					return
				}
				defer func() { <-slots }()
				reused, err := p.AddShard(ctx, s, held)
				if err == nil && reused {
					err = f.awaitShardCurrent(ctx, si, s)
				}
				if err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
			})
		}
	}
	wg.Wait()
	return errors.Join(errs...)
}

// addShardsAtOnce bounds the shard lists AddShards runs at once.
const addShardsAtOnce = 2

// awaitShardCurrent waits until the cache of shard s of si holds the
// apiserver's state as of the call (see freshness.go).
func (f *Ops) awaitShardCurrent(ctx context.Context, si *sharedInformer, s int) error {
	p := si.partitioned
	store, ok := p.shardStore(s)
	if !ok {
		return nil // dropped meanwhile: not held here any more
	}
	kind := fmt.Sprintf("%s shard %d", si.res, s)
	err := f.caches.awaitCurrent(ctx, si, store, partition.Selector(p.field, []int{s}, p.n), func(string) bool { return true }, func(_ string, keys int) {
		f.log.WithFields(map[string]any{"cache": kind, "behind": keys}).Warn("a new hold waits for a warm shard's cache that lags the apiserver; no handler of the shard runs until it has caught up")
		f.caches.lag.note(kind, keys)
	})
	f.caches.lag.clear(kind)
	return err
}

// DropShards stops caching the objects of shards in every partitioned
// cache: a shard handed off here is watched by its new holder. Warm
// shards (WarmShards) stay.
func (f *Ops) DropShards(shards []int) {
	for _, si := range f.partitionedCaches() {
		for _, s := range shards {
			si.partitioned.DropShard(s)
		}
	}
}

// WarmShards caches shards in every partitioned cache ahead of a hold,
// without waiting for their lists: the shards this replica is next in
// line for (shard.Config.OnNext), so that taking one over lists nothing.
// Shards warm before and not in shards are dropped unless held says they
// are held here.
func (f *Ops) WarmShards(shards []int, held func(int) bool) {
	for _, si := range f.partitionedCaches() {
		si.partitioned.SetWarm(shards, held)
	}
}

// EnqueueShards queues, at low priority, the key of each cached object of
// shards on every controller, and returns how many it queued: what a
// sharded replica does when shards start here. A partitioned controller
// knows each key's shard from its object; for the others keyShard tells
// it.
func (f *Ops) EnqueueShards(shards []int, keyShard func(key string) int) int {
	in := make(map[int]bool, len(shards))
	for _, s := range shards {
		in[s] = true
	}
	n := 0
	f.visitKeyShards(keyShard, func(c *Controller, key string, s int) {
		if in[s] {
			c.enqueue(key, 0, PriorityLow)
			n++
		}
	})
	return n
}

// VisitKeyShards calls visit with the shard of the key of every cached
// object of every controller (a key cached by two controllers' kinds is
// visited twice): a partitioned controller's shard from the key's object,
// the others' from keyShard. rein_shard_keys counts them so.
func (f *Ops) VisitKeyShards(keyShard func(key string) int, visit func(shard int)) {
	f.visitKeyShards(keyShard, func(_ *Controller, _ string, s int) { visit(s) })
}

func (f *Ops) visitKeyShards(keyShard func(key string) int, visit func(c *Controller, key string, shard int)) {
	for _, c := range f.controllerList() {
		p, partitioned := c.informer.(*partitionedInformer)
		for _, key := range c.informer.GetStore().ListKeys() {
			var s int
			if partitioned {
				var ok bool
				if s, ok = p.ShardOfKey(key); !ok {
					continue // dropped since the list: no longer here
				}
			} else {
				s = keyShard(key)
			}
			visit(c, key, s)
		}
	}
}
