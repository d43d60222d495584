package partition_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/sirupsen/logrus/hooks/test"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"

	"github.com/rein-k8s/rein/internal/engine"
	"github.com/rein-k8s/rein/internal/partition"
	"github.com/rein-k8s/rein/internal/testkit"
	"github.com/rein-k8s/rein/internal/testkit/factorytest"
	"github.com/rein-k8s/rein/pkg/framework"
)

// heldShards admits the keys of some shards (the engine's gate by shard).
type heldShards map[int]bool

func (h heldShards) Enter(string) (context.Context, func(), bool) {
	return nil, nil, false // a partitioned controller enters by shard
}

func (h heldShards) EnterShard(s int) (context.Context, func(), bool) {
	return context.Background(), func() {}, h[s]
}

// A factory with partitioned caches, on an apiserver without the feature
// gate: it says so once, caches every object, and still gives each key the
// shard of its object's UID, so that its replica runs the same keys as a
// replica of the same group on a gated apiserver.
func TestPartitionedFactoryOnAnUngatedServer(t *testing.T) {
	env := partition.UngatedEnv(t)
	cs := testkit.Admin(t, env)
	ns := testkit.NewNamespace(t, cs, "partition-fallback-")
	const n = 4
	shardOf := map[string]int{}
	for i := range 16 {
		cm, err := cs.CoreV1().ConfigMaps(ns).Create(t.Context(), &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("cm-%d", i)}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		shardOf[ns+"/"+cm.Name] = partition.OfValue(string(cm.UID), n)
	}
	logger, logs := test.NewNullLogger()
	f, err := framework.NewFactory(env.Config(), clientgoscheme.Scheme, framework.Options{
		Namespace: ns, PartitionShards: n, Logger: logrus.NewEntry(logger),
	})
	if err != nil {
		t.Fatal(err)
	}
	ops := engine.OpsOf(f)
	ops.GateKeys(heldShards{0: true})
	c, err := ops.Controller(factorytest.ConfigMaps)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var ran []string
	c.AddHandler(t.Context(), "record", func(_ context.Context, key string, _ runtime.Object) (runtime.Object, error) {
		mu.Lock()
		ran = append(ran, key)
		mu.Unlock()
		return nil, nil
	})
	if err := ops.StartCaches(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := ops.WaitForCacheSync(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := ops.AddShards(t.Context(), []int{0}, nil); err != nil {
		t.Fatal(err)
	}
	if got := len(c.Informer().GetStore().ListKeys()); got != len(shardOf) {
		t.Fatalf("the fallback cache holds %d of the %d objects", got, len(shardOf))
	}
	var warnings []string
	for _, e := range logs.AllEntries() {
		if e.Level == logrus.WarnLevel && strings.Contains(e.Message, "ignores shard selectors") {
			warnings = append(warnings, fmt.Sprint(e.Data["kind"]))
		}
	}
	if len(warnings) != 1 {
		t.Fatalf("want one warning that the apiserver ignores shard selectors, got %v", warnings)
	}

	var want []string
	for key, s := range shardOf {
		if s == 0 {
			want = append(want, key)
		}
	}
	if len(want) == 0 {
		t.Skip("16 UIDs missed shard 0: rerun")
	}
	slices.Sort(want)
	w, err := ops.StartWorkers(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	if got := ops.EnqueueShards([]int{0}, func(string) int { return -1 }); got != len(want) {
		t.Fatalf("EnqueueShards(0) queued %d keys, want the %d whose UID is in shard 0", got, len(want))
	}
	// Every key is queued by its informer's add as well; those of other
	// shards are refused by the gate. Wait until the queue is empty.
	testkit.Eventually(t, 30*time.Second, 20*time.Millisecond, "the keys of shard 0 run and the others refused", func() bool {
		return c.QueueLen() == 0 && len(snapshot(&mu, &ran)) >= len(want)
	})
	got := slices.Compact(slices.Sorted(slices.Values(snapshot(&mu, &ran))))
	if !slices.Equal(got, want) {
		t.Fatalf("ran %v, want the keys of shard 0 by UID %v", got, want)
	}
}

func snapshot(mu *sync.Mutex, s *[]string) []string {
	mu.Lock()
	defer mu.Unlock()
	return slices.Clone(*s)
}
