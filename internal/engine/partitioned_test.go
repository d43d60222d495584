package engine_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/rein-k8s/rein/internal/engine"
	"github.com/rein-k8s/rein/internal/partition"
	"github.com/rein-k8s/rein/internal/testkit"
	"github.com/rein-k8s/rein/internal/testkit/factorytest"
)

// events records what a handler of the partitioned cache received.
type events struct {
	mu      sync.Mutex
	added   []string
	deleted []string
	// seen gets every added or deleted key.
	seen chan string
}

func (e *events) handler() cache.ResourceEventHandler {
	key := func(obj any) string {
		k, _ := cache.DeletionHandlingMetaNamespaceKeyFunc(obj)
		return k
	}
	return cache.ResourceEventHandlerFuncs{
		AddFunc: func(obj any) {
			e.mu.Lock()
			e.added = append(e.added, key(obj))
			e.mu.Unlock()
			e.seen <- key(obj)
		},
		DeleteFunc: func(obj any) {
			e.mu.Lock()
			e.deleted = append(e.deleted, key(obj))
			e.mu.Unlock()
			e.seen <- key(obj)
		},
	}
}

func (e *events) snapshot() (added, deleted []string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	added, deleted = slices.Clone(e.added), slices.Clone(e.deleted)
	slices.Sort(added)
	return added, deleted
}

// A partitioned cache holds exactly the objects of the shards added to it,
// hands them to its handlers before AddShard returns, forgets a dropped
// shard's objects without a delete event, and names the shard of a
// deleted object's key until Forget.
func TestPartitionedCache(t *testing.T) {
	cs := adminClient(t)
	ns := newNamespace(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const n = 4
	shardOf := map[string]int{} // key → shard, by UID
	create := func(name string) string {
		cm, err := cs.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		key := ns + "/" + name
		shardOf[key] = partition.OfValue(string(cm.UID), n)
		return key
	}
	for i := range 40 {
		create(fmt.Sprintf("cm-%d", i))
	}
	keysOf := func(shards ...int) []string {
		var out []string
		for key, s := range shardOf {
			if slices.Contains(shards, s) {
				out = append(out, key)
			}
		}
		slices.Sort(out)
		return out
	}

	p := engine.NewPartitionedInformer(partition.ByUID, n, func(s int) cache.SharedIndexInformer {
		return shardInformer(cs, ns, partition.Selector(partition.ByUID, []int{s}, n))
	}, nil, nil)
	ev := &events{seen: make(chan string, 1000)}
	if _, err := p.AddEventHandler(ev.handler()); err != nil {
		t.Fatal(err)
	}
	if err := p.SetTransform(engine.DropManagedFields); err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	ran := make(chan struct{})
	go func() {
		defer close(ran)
		p.RunWithContext(runCtx)
	}()
	defer func() {
		stop()
		testkit.Receive(t, ran, 30*time.Second, "the partitioned cache to stop")
	}()
	if !cache.WaitFor(ctx, "", p.HasSyncedChecker()) {
		t.Fatal("a partitioned cache holding no shard did not sync")
	}

	for _, s := range []int{1, 3} {
		if _, err := p.AddShard(ctx, s, nil); err != nil {
			t.Fatal(err)
		}
	}
	// AddShard returned: every object of both shards is stored and handed
	// to the handler.
	held := keysOf(1, 3)
	stored := p.GetStore().ListKeys()
	slices.Sort(stored)
	if !slices.Equal(stored, held) {
		t.Fatalf("cache of shards 1 and 3 holds %v, want %v", stored, held)
	}
	if added, _ := ev.snapshot(); !slices.Equal(added, held) {
		t.Fatalf("handler got %v, want %v", added, held)
	}
	for key, s := range shardOf {
		got, ok := p.ShardOfKey(key)
		if want := s == 1 || s == 3; ok != want || ok && got != s {
			t.Fatalf("ShardOfKey(%s) = %d, %v; its shard is %d", key, got, ok, s)
		}
		if _, ok, _ := p.GetStore().GetByKey(key); ok != (s == 1 || s == 3) {
			t.Fatalf("GetByKey(%s) of shard %d: found %v", key, s, ok)
		}
	}

	p.DropShard(1)
	stored = p.GetStore().ListKeys()
	slices.Sort(stored)
	if want := keysOf(3); !slices.Equal(stored, want) {
		t.Fatalf("after dropping shard 1 the cache holds %v, want %v", stored, want)
	}
	for _, key := range keysOf(1) {
		if _, ok := p.ShardOfKey(key); ok {
			t.Fatalf("ShardOfKey(%s) of the dropped shard 1 still answers", key)
		}
	}
	if got := p.Shards(); !slices.Equal(got, []int{3}) {
		t.Fatalf("Shards() = %v after dropping 1 of {1, 3}", got)
	}
	// A shard no longer held when its informer would be made is not
	// added (a preparation that lost the race with the shard's stop).
	if _, err := p.AddShard(ctx, 0, func(int) bool { return false }); err != nil {
		t.Fatal(err)
	}
	if got := p.Shards(); !slices.Equal(got, []int{3}) {
		t.Fatalf("Shards() = %v after adding shard 0, no longer held", got)
	}

	// New objects until one lands in shard 3: once the handler has it, the
	// watch delivered every object created before it.
	var last string
	for i := 0; last == ""; i++ {
		if key := create(fmt.Sprintf("new-%d", i)); shardOf[key] == 3 {
			last = key
		}
	}
	for key := ""; key != last; {
		key = testkit.Receive(t, ev.seen, 30*time.Second, "the watch of shard 3 to deliver "+last)
	}
	// Delete an object of shard 3: its key keeps its shard for the
	// handlers that run after the delete, until Forget.
	victim := keysOf(3)[0]
	if err := cs.CoreV1().ConfigMaps(ns).Delete(ctx, victim[len(ns)+1:], metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	for key := ""; key != victim; {
		key = testkit.Receive(t, ev.seen, 30*time.Second, "the delete of "+victim)
	}
	if s, ok := p.ShardOfKey(victim); !ok || s != 3 {
		t.Fatalf("ShardOfKey(%s) after its delete = %d, %v; want 3", victim, s, ok)
	}
	p.Forget(victim)
	if _, ok := p.ShardOfKey(victim); ok {
		t.Fatalf("ShardOfKey(%s) still answers after Forget", victim)
	}

	added, deleted := ev.snapshot()
	if !slices.Equal(deleted, []string{victim}) {
		t.Fatalf("handler got deletes %v, want only %s (dropping a shard deletes nothing)", deleted, victim)
	}
	// The objects of shards 1 and 3 as they were added, then the new
	// objects of shard 3 (shard 1's were created after it was dropped).
	want := slices.Clone(held)
	for key, s := range shardOf {
		if s == 3 && !slices.Contains(held, key) {
			want = append(want, key)
		}
	}
	slices.Sort(want)
	if !slices.Equal(added, want) {
		t.Fatalf("handler got adds %v, want %v", added, want)
	}
}

// shardInformer is the informer of one shard of ConfigMaps in ns.
func shardInformer(cs kubernetes.Interface, ns, selector string) cache.SharedIndexInformer {
	return shardInformerListing(cs, ns, selector, nil)
}

// shardInformerListing is shardInformer whose every list, and every watch
// that sends the initial objects (a watch-list), first calls listing, and
// fails with its error.
func shardInformerListing(cs kubernetes.Interface, ns, selector string, listing func(ctx context.Context) error) cache.SharedIndexInformer {
	before := func(ctx context.Context, initial bool) error {
		if listing == nil || !initial {
			return nil
		}
		return listing(ctx)
	}
	lw := &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, opts metav1.ListOptions) (runtime.Object, error) {
			if err := before(ctx, true); err != nil {
				return nil, err
			}
			opts.ShardSelector = selector
			return cs.CoreV1().ConfigMaps(ns).List(ctx, opts)
		},
		WatchFuncWithContext: func(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error) {
			if err := before(ctx, opts.SendInitialEvents != nil && *opts.SendInitialEvents); err != nil {
				return nil, err
			}
			opts.ShardSelector = selector
			return cs.CoreV1().ConfigMaps(ns).Watch(ctx, opts)
		},
	}
	return cache.NewSharedIndexInformer(lw, &corev1.ConfigMap{}, 0, cache.Indexers{})
}

// Without support for shard selectors (the probe says no), the cache holds
// every object in one informer, once: AddShard waits for it, DropShard
// keeps it, and ShardOfKey computes each key's shard from its object.
func TestPartitionedCacheFallsBackToFull(t *testing.T) {
	cs := adminClient(t)
	ns := newNamespace(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const n = 4
	shardOf := map[string]int{}
	for i := range 20 {
		cm, err := cs.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("cm-%d", i)}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		shardOf[ns+"/"+cm.Name] = partition.OfValue(string(cm.UID), n)
	}
	var made []int
	var madeMu sync.Mutex
	fallbacks := 0
	p := engine.NewPartitionedInformer(partition.ByUID, n, func(s int) cache.SharedIndexInformer {
		madeMu.Lock()
		made = append(made, s)
		madeMu.Unlock()
		return shardInformer(cs, ns, partition.Selector(partition.ByUID, []int{s}, n))
	}, func(context.Context) (bool, error) { return false, nil }, func() { fallbacks++ })
	ev := &events{seen: make(chan string, 1000)}
	if _, err := p.AddEventHandler(ev.handler()); err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	ran := make(chan struct{})
	go func() {
		defer close(ran)
		p.RunWithContext(runCtx)
	}()
	defer func() {
		stop()
		testkit.Receive(t, ran, 30*time.Second, "the partitioned cache to stop")
	}()
	if _, err := p.AddShard(ctx, 2, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := p.AddShard(ctx, 0, nil); err != nil {
		t.Fatal(err)
	}
	p.DropShard(2)
	var all []string
	for key := range shardOf {
		all = append(all, key)
	}
	slices.Sort(all)
	stored := p.GetStore().ListKeys()
	slices.Sort(stored)
	if !slices.Equal(stored, all) {
		t.Fatalf("the full cache holds %v, want every object %v", stored, all)
	}
	if added, _ := ev.snapshot(); !slices.Equal(added, all) {
		t.Fatalf("handler got %v, want every object once: %v", added, all)
	}
	for key, s := range shardOf {
		if got, ok := p.ShardOfKey(key); !ok || got != s {
			t.Fatalf("ShardOfKey(%s) = %d, %v in full mode; its shard is %d", key, got, ok, s)
		}
	}
	madeMu.Lock()
	defer madeMu.Unlock()
	if !slices.Equal(made, []int{-1}) || fallbacks != 1 {
		t.Fatalf("full mode made informers %v and fell back %d times; want one informer of every object (-1), one fallback", made, fallbacks)
	}
}

// shardSet is a ShardGate that admits the shards it holds; a key it is
// asked by key (not by shard) fails the test.
type shardSet struct {
	t    *testing.T
	mu   sync.Mutex
	held map[int]bool
}

func (g *shardSet) Enter(key string) (context.Context, func(), bool) {
	g.t.Errorf("a partitioned controller entered by key %s", key)
	return nil, nil, false
}

func (g *shardSet) EnterShard(s int) (context.Context, func(), bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return context.Background(), func() {}, g.held[s]
}

// A factory whose controllers' kinds are partitioned: a controller caches
// and runs the objects of the shards added (by UID), enters its gate by
// each key's shard, refuses keys of objects it does not cache, runs a
// deleted object's key in its shard, and leaves related kinds in full.
func TestPartitionedFactory(t *testing.T) {
	ns := newNamespace(t)
	f := newFactory(t, ns, engine.Options{})
	const n = 4
	if err := engine.OpsOf(f).Partition(partition.ByUID, n); err != nil {
		t.Fatal(err)
	}
	gate := &shardSet{t: t, held: map[int]bool{0: true, 2: true}}
	engine.OpsOf(f).GateKeys(gate)
	type run struct {
		key     string
		deleted bool
	}
	ran := make(chan run, 100)
	c := controller(t, f, factorytest.ConfigMaps)
	c.AddHandler(t.Context(), "record", func(_ context.Context, key string, obj runtime.Object) (runtime.Object, error) {
		ran <- run{key, obj == nil}
		return nil, nil
	})
	if err := engine.OpsOf(f).Partition(partition.ByUID, n); err == nil {
		t.Fatal("Partition after a controller was made: no error")
	}
	// A related kind (Secrets here) is cached in full.
	secrets, err := engine.OpsOf(f).Informer(factorytest.Secrets)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := adminClient(t).CoreV1().Secrets(ns).Create(t.Context(), &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "s"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	shardOf := map[string]int{}
	for i := range 24 {
		cm := createConfigMap(t, ns, fmt.Sprintf("cm-%d", i), nil)
		shardOf[ns+"/"+cm.Name] = partition.OfValue(string(cm.UID), n)
	}
	startWithTerm(t, f, t.Context())
	if err := engine.OpsOf(f).AddShards(t.Context(), []int{0, 2}, nil); err != nil {
		t.Fatal(err)
	}
	var want []string
	for key, s := range shardOf {
		if s == 0 || s == 2 {
			want = append(want, key)
		}
	}
	slices.Sort(want)
	var got []string
	for range want {
		r := receive(t, ran, 30*time.Second, "the keys of shards 0 and 2")
		got = append(got, r.key)
	}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Fatalf("ran %v, want the keys of shards 0 and 2: %v", got, want)
	}
	eventually(t, 10*time.Second, "the Secret in the full cache", func() bool { return len(secrets.GetStore().ListKeys()) == 1 })

	// A key of shard 1, not cached here, is refused (another replica
	// runs it); a key of shard 2, deleted, runs here as deleted.
	var other, victim string
	for key, s := range shardOf {
		switch s {
		case 1, 3:
			other = key
		case 2:
			victim = key
		}
	}
	if other == "" || victim == "" {
		t.Skip("24 UIDs missed a shard: rerun")
	}
	c.Enqueue(other)
	if err := adminClient(t).CoreV1().ConfigMaps(ns).Delete(t.Context(), victim[len(ns)+1:], metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if r := receive(t, ran, 30*time.Second, "the deleted key's run"); r != (run{victim, true}) {
		t.Fatalf("ran %+v, want %s as deleted (and no run of %s, of another shard)", r, victim, other)
	}
	eventually(t, 10*time.Second, "the refused key dropped", func() bool { return c.QueueLen() == 0 })
	select {
	case r := <-ran:
		t.Fatalf("ran %+v after the delete; want nothing", r)
	default:
	}

	// EnqueueShards queues the keys of the shards asked, by their
	// objects' shards (the key function is for unpartitioned kinds).
	var shard0 []string
	for key, s := range shardOf {
		if s == 0 {
			shard0 = append(shard0, key)
		}
	}
	slices.Sort(shard0)
	if got := engine.OpsOf(f).EnqueueShards([]int{0}, func(string) int { return 2 }); got != len(shard0) {
		t.Fatalf("EnqueueShards(0) queued %d keys, want the %d of shard 0", got, len(shard0))
	}
	got = got[:0]
	for range shard0 {
		got = append(got, receive(t, ran, 30*time.Second, "the requeued keys of shard 0").key)
	}
	slices.Sort(got)
	if !slices.Equal(got, shard0) {
		t.Fatalf("EnqueueShards(0) ran %v, want %v", got, shard0)
	}

	// Dropping shard 0 forgets its objects; shard 2's stay.
	engine.OpsOf(f).DropShards([]int{0})
	for _, key := range c.Informer().GetStore().ListKeys() {
		if shardOf[key] != 2 {
			t.Fatalf("after dropping shard 0 the cache holds %s of shard %d", key, shardOf[key])
		}
	}
}

// Warm shards (WarmShards: the shards a replica is next in line for) are
// cached ahead of a hold and run no handler; DropShards keeps them; taking
// one lists nothing but checks its cache against the apiserver, and waits
// while it lags; a shard no longer warm nor held is dropped.
func TestWarmShards(t *testing.T) {
	ns := newNamespace(t)
	f := newFactory(t, ns, engine.Options{})
	const n = 4
	if err := engine.OpsOf(f).Partition(partition.ByUID, n); err != nil {
		t.Fatal(err)
	}
	gate := &shardSet{t: t, held: map[int]bool{0: true}}
	engine.OpsOf(f).GateKeys(gate)
	held := func(s int) bool {
		gate.mu.Lock()
		defer gate.mu.Unlock()
		return gate.held[s]
	}
	ran := make(chan string, 100)
	c := controller(t, f, factorytest.ConfigMaps)
	c.AddHandler(t.Context(), "record", func(_ context.Context, key string, _ runtime.Object) (runtime.Object, error) {
		ran <- key
		return nil, nil
	})
	keysOf := map[int][]string{}
	shardOf := map[string]int{}
	for i := range 32 {
		cm := createConfigMap(t, ns, fmt.Sprintf("cm-%d", i), nil)
		s := partition.OfValue(string(cm.UID), n)
		keysOf[s] = append(keysOf[s], ns+"/"+cm.Name)
		shardOf[ns+"/"+cm.Name] = s
	}
	if len(keysOf[0]) == 0 || len(keysOf[1]) == 0 || len(keysOf[2]) == 0 {
		t.Skip("32 UIDs missed a shard: rerun")
	}
	cachedShards := func() map[int]int {
		out := map[int]int{}
		for _, key := range c.Informer().GetStore().ListKeys() {
			out[shardOf[key]]++
		}
		return out
	}
	startWithTerm(t, f, t.Context())
	if err := engine.OpsOf(f).AddShards(t.Context(), []int{0}, held); err != nil {
		t.Fatal(err)
	}
	for range keysOf[0] {
		receive(t, ran, 30*time.Second, "the keys of shard 0")
	}

	// Warm shard 1: cached, and its keys are refused by the gate.
	engine.OpsOf(f).WarmShards([]int{1}, held)
	eventually(t, 30*time.Second, "shard 1 cached warm", func() bool { return cachedShards()[1] == len(keysOf[1]) })
	eventually(t, 10*time.Second, "the warm shard's keys refused", func() bool { return c.QueueLen() == 0 })
	select {
	case key := <-ran:
		t.Fatalf("%s of warm shard %d ran before its shard was held", key, shardOf[key])
	default:
	}
	engine.OpsOf(f).DropShards([]int{1})
	if got := cachedShards()[1]; got != len(keysOf[1]) {
		t.Fatalf("DropShards dropped warm shard 1: %d of its %d objects cached", got, len(keysOf[1]))
	}

	// A warm shard that lags the apiserver (an object the apiserver does
	// not have) holds its new hold back until it has caught up.
	store, ok := engine.ShardStore(c, 1)
	if !ok {
		t.Fatal("no store for warm shard 1")
	}
	ghost := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "ghost", ResourceVersion: "1"}}
	if err := store.Add(ghost); err != nil {
		t.Fatal(err)
	}
	gate.mu.Lock()
	gate.held[1] = true
	gate.mu.Unlock()
	short, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	err := engine.OpsOf(f).AddShards(short, []int{1}, held)
	cancel()
	if err == nil || !strings.Contains(err.Error(), "behind the apiserver") {
		t.Fatalf("AddShards of a lagging warm shard: %v, want an error saying it is behind", err)
	}
	if err := store.Delete(ghost); err != nil {
		t.Fatal(err)
	}
	if err := engine.OpsOf(f).AddShards(t.Context(), []int{1}, held); err != nil {
		t.Fatalf("AddShards of a current warm shard: %v", err)
	}

	// Warm sets change: shard 2 warm, then no shard warm: 2 is dropped,
	// 1 stays (held).
	engine.OpsOf(f).WarmShards([]int{2}, held)
	eventually(t, 30*time.Second, "shard 2 cached warm", func() bool { return cachedShards()[2] == len(keysOf[2]) })
	engine.OpsOf(f).WarmShards(nil, held)
	if got := cachedShards(); got[2] != 0 || got[1] != len(keysOf[1]) || got[0] != len(keysOf[0]) {
		t.Fatalf("after warming nothing the cache holds %v objects by shard, want shard 2 dropped and 0 and 1 kept", got)
	}
}
