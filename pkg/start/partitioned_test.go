package start_test

import (
	"context"
	"flag"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"

	"github.com/rein-k8s/rein/internal/engine"
	"github.com/rein-k8s/rein/internal/partition"
	testapi "github.com/rein-k8s/rein/internal/testapi/v1"
	"github.com/rein-k8s/rein/internal/testkit"
	"github.com/rein-k8s/rein/internal/testkit/factorytest"
	"github.com/rein-k8s/rein/pkg/fence"
	"github.com/rein-k8s/rein/pkg/framework"
	"github.com/rein-k8s/rein/pkg/shard"
	"github.com/rein-k8s/rein/pkg/start"
)

func newPartitionedFactory(t *testing.T, ns string, shards int) *framework.Factory {
	s := factorytest.Scheme(t, clientgoscheme.AddToScheme, testapi.AddToScheme)
	f, err := framework.NewFactory(env.Config(), s, framework.Options{Namespace: ns, PartitionShards: shards})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// A partitioned factory needs a sharded group of its shard count, and
// --partition-caches needs --shards and a factory built with
// Group.PartitionShards().
func TestPartitionedGroupMistakes(t *testing.T) {
	for _, c := range []struct {
		name        string
		args        []string
		partitioned int // the factory's PartitionShards
		wants       string
	}{
		{"other count", []string{"--shards=8"}, 4, "partitions its caches into 4 shards"},
		{"single leader", nil, 4, "need a sharded group"},
		{"flag without shards", []string{"--partition-caches"}, 0, "--partition-caches needs --shards"},
		{"flag, factory not partitioned", []string{"--shards=4", "--partition-caches"}, 0, "framework.Options{PartitionShards: group.PartitionShards()}"},
		{"malformed flag", []string{"--shards=4", "--partition-caches=maybe"}, 4, `--partition-caches="maybe": want true, false or warm-next`},
	} {
		t.Run(c.name, func(t *testing.T) {
			g := start.Group{LeaseName: testLease}
			fs := flag.NewFlagSet("test", flag.ContinueOnError)
			g.BindFlags(fs)
			if err := fs.Parse(c.args); err != nil {
				t.Fatal(err)
			}
			g.Factories = []start.Starter{newPartitionedFactory(t, "default", c.partitioned)}
			_, err := start.New(testOptions(t, "default"), g)
			if err == nil || !strings.Contains(err.Error(), c.wants) {
				t.Fatalf("want an error naming %q, got %v", c.wants, err)
			}
		})
	}
}

// The flag reaches the factory through PartitionShards: the shard count
// with --partition-caches, 0 without.
func TestPartitionShardsFromTheFlags(t *testing.T) {
	for _, c := range []struct {
		args []string
		want int
	}{
		{[]string{"--shards=6"}, 0},
		{[]string{"--shards=6", "--partition-caches"}, 6},
		{[]string{"--partition-caches=false", "--shards=6"}, 0},
		{[]string{"--partition-caches=warm-next", "--shards=6"}, 6},
	} {
		var g start.Group
		fs := flag.NewFlagSet("test", flag.ContinueOnError)
		g.BindFlags(fs)
		if err := fs.Parse(c.args); err != nil {
			t.Fatal(err)
		}
		if got := g.PartitionShards(); got != c.want {
			t.Errorf("%v: PartitionShards() = %d, want %d", c.args, got, c.want)
		}
	}
}

// TestPartitionedShardedGroup runs two replicas in this process, each with
// a sharded group (4 shards) whose factory partitions its caches. Each
// replica caches only the objects of the shards it holds (by UID), every
// object is handled by the replica holding its UID's shard with that
// shard's token; when one replica stops, the other caches and handles
// every object.
func TestPartitionedShardedGroup(t *testing.T) { testPartitionedShardedGroup(t, false) }

// TestPartitionedWarmNext is TestPartitionedShardedGroup with
// --partition-caches=warm-next: each replica also caches the shards it is
// next in line for (with two replicas, the other's), runs none of their
// keys, and takes them over when the other stops.
func TestPartitionedWarmNext(t *testing.T) { testPartitionedShardedGroup(t, true) }

func testPartitionedShardedGroup(t *testing.T, warm bool) {
	admin := testkit.Admin(t, env)
	ns := newNamespace(t, admin)
	const shards = 4
	type run struct {
		replica, key, token string
		at                  time.Time
	}
	var mu sync.Mutex
	var runs []run
	shardOf := map[string]int{} // key → shard of its UID
	create := func(name string) {
		cm, err := admin.CoreV1().ConfigMaps(ns).Create(context.Background(), &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		shardOf[ns+"/"+name] = partition.OfValue(string(cm.UID), shards)
		mu.Unlock()
	}
	for i := range 30 {
		create(fmt.Sprintf("cm-%02d", i))
	}
	caches := map[string]*engine.Controller{}
	newReplica := func(name string) *start.Replica {
		g := start.Group{LeaseName: "work"}
		fs := flag.NewFlagSet(name, flag.ContinueOnError)
		g.BindFlags(fs)
		mode := "true"
		if warm {
			mode = "warm-next"
		}
		if err := fs.Parse([]string{"--shards=" + fmt.Sprint(shards), "--partition-caches=" + mode}); err != nil {
			t.Fatal(err)
		}
		f := newPartitionedFactory(t, ns, g.PartitionShards())
		c, err := engine.OpsOf(f).Controller(factorytest.ConfigMaps)
		if err != nil {
			t.Fatal(err)
		}
		caches[name] = c
		c.AddHandler(t.Context(), "record", func(ctx context.Context, key string, obj runtime.Object) (runtime.Object, error) {
			tok, _ := fence.TokenFrom(ctx)
			mu.Lock()
			runs = append(runs, run{name, key, tok.Lease, time.Now()})
			mu.Unlock()
			return nil, nil
		})
		o := testOptions(t, ns)
		o.IdentityBase = name
		o.Registry = nil
		g.Factories = []start.Starter{f}
		r, err := start.New(o, g)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	a, b := newReplica("a"), newReplica("b")
	type running struct {
		stop context.CancelFunc
		done chan error
	}
	run1 := func(r *start.Replica) running {
		ctx, stop := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- r.Run(ctx) }()
		return running{stop, done}
	}
	ra, rb := run1(a), run1(b)
	defer func() {
		ra.stop()
		rb.stop()
	}()
	heldBy := func(r *start.Replica) []int {
		code, body := get(t, "http://"+r.ProbeAddr()+"/readyz")
		i := strings.Index(body, "shards [")
		if code != 200 || i < 0 {
			return nil
		}
		var out []int
		for _, f := range strings.Fields(strings.Trim(body[i+len("shards "):strings.Index(body[i:], "]")+i+1], "[]")) {
			var s int
			_, _ = fmt.Sscan(f, &s)
			out = append(out, s)
		}
		return out
	}
	var heldA, heldB []int
	// The first replica to join holds every shard until the other does,
	// and may run keys of shards it then hands on: the holder check below
	// covers the runs after the shards settled.
	eventually(t, "both replicas hold 2 shards", func() bool {
		heldA, heldB = heldBy(a), heldBy(b)
		return len(heldA) == shards/2 && len(heldB) == shards/2
	})
	settled := time.Now()
	// cached checks that a replica's cache holds exactly the objects of
	// the shards it holds (warm: every shard, as with two replicas each is
	// next in line for the other's).
	cached := func(name string, held []int) bool {
		if warm {
			held = []int{0, 1, 2, 3}
		}
		mu.Lock()
		defer mu.Unlock()
		keys := caches[name].Informer().GetStore().ListKeys()
		want := 0
		for _, s := range shardOf {
			if slices.Contains(held, s) {
				want++
			}
		}
		for _, key := range keys {
			if !slices.Contains(held, shardOf[key]) {
				return false
			}
		}
		return len(keys) == want
	}
	eventually(t, "each replica caches the objects of its shards", func() bool { return cached("a", heldA) && cached("b", heldB) })
	// rein_shard_keys counts each cached key in its UID's shard, as the
	// cache holds it (not in its name's).
	eventually(t, "a's rein_shard_keys count its keys by their UIDs' shards", func() bool {
		_, metrics := get(t, "http://"+a.MetricsAddr()+"/metrics")
		mu.Lock()
		defer mu.Unlock()
		for s := range shards {
			want := 0
			if warm || slices.Contains(heldA, s) {
				for _, of := range shardOf {
					if of == s {
						want++
					}
				}
			}
			if !regexp.MustCompile(fmt.Sprintf(`(?m)^rein_shard_keys\{[^}]*shard="%d"[^}]*\} %d$`, s, want)).MatchString(metrics) {
				return false
			}
		}
		return true
	})

	handled := func() map[string]string {
		mu.Lock()
		defer mu.Unlock()
		out := map[string]string{}
		for _, r := range runs {
			out[r.key] = r.replica
		}
		return out
	}
	eventually(t, "every key handled", func() bool { return len(handled()) == 30 })
	mu.Lock()
	for _, r := range runs {
		want := shard.RecordName("work", shardOf[r.key])
		if r.token != want {
			t.Errorf("%s handled %s with the token of %q, want %q (its UID's shard)", r.replica, r.key, r.token, want)
		}
		if held := map[string][]int{"a": heldA, "b": heldB}[r.replica]; r.at.After(settled) && !slices.Contains(held, shardOf[r.key]) {
			t.Errorf("%s handled %s of shard %d, holding %v", r.replica, r.key, shardOf[r.key], held)
		}
	}
	runs = nil
	mu.Unlock()

	// b stops: a holds every shard, caches every object and handles new
	// ones.
	rb.stop()
	if err := testkit.Receive(t, rb.done, 30*time.Second, "b's Run to return"); err != nil {
		t.Fatal(err)
	}
	all := []int{0, 1, 2, 3}
	eventually(t, "a holds every shard", func() bool { return len(heldBy(a)) == shards })
	for i := range 12 {
		create(fmt.Sprintf("late-%02d", i))
	}
	eventually(t, "a caches every object", func() bool { return cached("a", all) })
	eventually(t, "a handles every new key", func() bool {
		h := handled()
		for i := range 12 {
			if h[fmt.Sprintf("%s/late-%02d", ns, i)] != "a" {
				return false
			}
		}
		return true
	})
	ra.stop()
	if err := testkit.Receive(t, ra.done, 30*time.Second, "a's Run to return"); err != nil {
		t.Fatal(err)
	}
}
