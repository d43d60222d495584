package engine_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/rein-k8s/rein/internal/engine"
	"github.com/rein-k8s/rein/internal/partition"
)

// The warmer lists warm shards one at a time, lowest first, and starts
// none while an AddShards is under way: warming must not compete with a
// takeover (at 100k objects it made warm takeovers slower than cold ones).
// Each shard's list waits for the test to release it, so the order and
// overlap of lists are observed, not timed.
func TestWarmerListsOneShardAtATime(t *testing.T) {
	cs := adminClient(t)
	ns := newNamespace(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const n = 6
	for i := range 30 {
		if _, err := cs.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("cm-%d", i)}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}

	var (
		mu      sync.Mutex
		release = map[int]chan struct{}{}
		infs    = map[int]cache.SharedIndexInformer{}
		order   []int    // shards whose list began, in order
		overlap []string // warm lists begun while another ran
	)
	gate := func(s int) chan struct{} {
		mu.Lock()
		defer mu.Unlock()
		if release[s] == nil {
			release[s] = make(chan struct{})
		}
		return release[s]
	}
	warm := func(s int) bool { return s >= 1 && s <= 4 }
	listed := make(chan int, 100) // shards whose list began
	var resumed atomic.Bool       // set just before the pause ends
	// begin runs as shard s's informer first lists (a list, or a watch
	// sending its initial events): it records overlaps with earlier warm
	// lists not yet synced, then waits for the test.
	begin := func(ctx context.Context, s int) error {
		mu.Lock()
		first := !slices.Contains(order, s)
		if first {
			order = append(order, s)
			for w, inf := range infs {
				if warm(s) && warm(w) && w != s && slices.Contains(order, w) && !inf.HasSynced() {
					overlap = append(overlap, fmt.Sprintf("shard %d began while warm shard %d was listed", s, w))
				}
			}
			if s == 4 && !resumed.Load() {
				overlap = append(overlap, "warm shard 4 began while an AddShards was under way")
			}
		}
		mu.Unlock()
		if !first {
			return nil
		}
		listed <- s
		select {
		case <-gate(s):
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	p := engine.NewPartitionedInformer(partition.ByUID, n, func(s int) cache.SharedIndexInformer {
		inf := shardInformerListing(cs, ns, partition.Selector(partition.ByUID, []int{s}, n), func(ctx context.Context) error { return begin(ctx, s) })
		mu.Lock()
		infs[s] = inf
		mu.Unlock()
		return inf
	}, nil, nil)
	runCtx, stop := context.WithCancel(ctx)
	ran := make(chan struct{})
	go func() {
		defer close(ran)
		p.RunWithContext(runCtx)
	}()
	defer func() { stop(); <-ran }()
	notHeld := func(int) bool { return false }
	// SetWarm does nothing before Run has started: wait for a held shard.
	close(gate(0))
	if _, err := p.AddShard(ctx, 0, nil); err != nil {
		t.Fatal(err)
	}
	if s := <-listed; s != 0 {
		t.Fatalf("listed shard %d first, want the held shard 0", s)
	}

	p.SetWarm([]int{3, 1, 2}, notHeld)
	for _, want := range []int{1, 2, 3} {
		if s := <-listed; s != want {
			t.Fatalf("the warmer listed shard %d, want %d (lowest first, one at a time)", s, want)
		}
		close(gate(want))
	}
	eventually(t, 30*time.Second, "the warm shards synced", p.HasSynced)

	// While an AddShards is under way (paused), a new warm shard waits;
	// the held shard 5 is listed meanwhile.
	resume := engine.PauseWarming(p)
	p.SetWarm([]int{1, 2, 3, 4}, notHeld)
	close(gate(5))
	if _, err := p.AddShard(ctx, 5, nil); err != nil {
		t.Fatal(err)
	}
	if s := <-listed; s != 5 {
		t.Fatalf("listed shard %d while paused, want only the added shard 5", s)
	}
	resumed.Store(true)
	resume()
	if s := <-listed; s != 4 {
		t.Fatalf("after the pause the warmer listed shard %d, want 4", s)
	}
	close(gate(4))
	eventually(t, 30*time.Second, "warm shard 4 synced", p.HasSynced)
	mu.Lock()
	defer mu.Unlock()
	if len(overlap) > 0 {
		t.Fatalf("the warmer overlapped lists: %v", overlap)
	}
}
