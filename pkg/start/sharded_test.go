package start_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"

	"github.com/rein-k8s/rein/internal/engine"
	"github.com/rein-k8s/rein/internal/netfault"
	"github.com/rein-k8s/rein/internal/testkit"
	"github.com/rein-k8s/rein/internal/testkit/factorytest"
	"github.com/rein-k8s/rein/pkg/fence"
	"github.com/rein-k8s/rein/pkg/framework"
	"github.com/rein-k8s/rein/pkg/shard"
	"github.com/rein-k8s/rein/pkg/start"
)

func TestShardedGroupMistakes(t *testing.T) {
	for _, c := range []struct {
		name  string
		edit  func(*start.Options, *start.Group)
		wants string
	}{
		{"negative --shards", func(o *start.Options, g *start.Group) { g.Shards = -1 }, "--shards=-1"},
		{"too many shards", func(o *start.Options, g *start.Group) { g.Shards = shard.MaxShards + 1 }, fmt.Sprintf("--shards=%d", shard.MaxShards+1)},
		{"no election", func(o *start.Options, g *start.Group) { o.LeaderElect, g.Shards = false, 4 }, "needs --leader-elect"},
		{"server-side fencing", func(o *start.Options, g *start.Group) { o.ServerSideFencing, g.Shards = true, 4 }, "--server-side-fencing does not cover sharded groups"},
		{"hooks", func(o *start.Options, g *start.Group) {
			g.Shards = 4
			g.OnLeader = []func(context.Context) error{func(context.Context) error { return nil }}
		}, "OnLeader hooks"},
		// A valid Lease name, too long for the label every group Lease carries.
		{"group name", func(o *start.Options, g *start.Group) { g.Shards, g.LeaseName = 4, strings.Repeat("g", 70) }, "must be a valid label value"},
	} {
		t.Run(c.name, func(t *testing.T) {
			o := testOptions(t, "default")
			g := start.Group{LeaseName: testLease, Factories: []start.Starter{newFactory(t, "default")}}
			c.edit(&o, &g)
			_, err := start.New(o, g)
			if err == nil || !strings.Contains(err.Error(), c.wants) {
				t.Fatalf("want an error naming %q, got %v", c.wants, err)
			}
		})
	}
}

// TestShardedBesideSingleLeader runs two replicas in this process, each
// with a sharded group (8 shards) and a single-leader group beside it.
// Every handler run of the sharded group happens on the replica holding
// its key's shard, with that shard's token; both replicas work; the
// single-leader group runs on one; /readyz lists the held shards; when
// one replica stops, the other takes every shard and handles a new key
// of each; at the end no member Lease is left.
func TestShardedBesideSingleLeader(t *testing.T) {
	admin := testkit.Admin(t, env)
	ns := newNamespace(t, admin)
	const shards = 8
	type run struct{ replica, key, token string }
	var mu sync.Mutex
	var runs []run
	var leaderRuns = map[string]int{}
	newReplica := func(name string) *start.Replica {
		sharded := newFactory(t, ns)
		c, err := engine.OpsOf(sharded).Controller(factorytest.ConfigMaps)
		if err != nil {
			t.Fatal(err)
		}
		c.AddHandler(t.Context(), "sharded", func(ctx context.Context, key string, obj runtime.Object) (runtime.Object, error) {
			tok, _ := fence.TokenFrom(ctx)
			mu.Lock()
			runs = append(runs, run{name, key, tok.Lease})
			mu.Unlock()
			return nil, nil
		})
		single := newFactory(t, ns)
		c2, err := engine.OpsOf(single).Controller(factorytest.ConfigMaps)
		if err != nil {
			t.Fatal(err)
		}
		c2.AddHandler(t.Context(), "single", func(ctx context.Context, key string, obj runtime.Object) (runtime.Object, error) {
			mu.Lock()
			leaderRuns[name]++
			mu.Unlock()
			return nil, nil
		})
		o := testOptions(t, ns)
		o.IdentityBase = name
		o.Registry = nil
		r, err := start.New(o,
			start.Group{LeaseName: "work", Shards: shards, Factories: []start.Starter{sharded}},
			start.Group{LeaseName: "singleton", Factories: []start.Starter{single}})
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
	stopped := func(x running) {
		t.Helper()
		x.stop()
		select {
		case err := <-x.done:
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("Run did not return")
		}
	}
	defer func() {
		ra.stop()
		rb.stop()
	}()
	holds := func(r *start.Replica) int {
		code, body := get(t, "http://"+r.ProbeAddr()+"/readyz")
		var n, of int
		if i := strings.Index(body, "holds "); code == 200 && i >= 0 {
			_, _ = fmt.Sscanf(body[i:], "holds %d of %d", &n, &of)
		}
		return n
	}
	eventually(t, "both replicas hold 4 shards", func() bool { return holds(a) == shards/2 && holds(b) == shards/2 })

	for i := range 40 {
		if _, err := admin.CoreV1().ConfigMaps(ns).Create(context.Background(), &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("cm-%02d", i)}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	handled := func() map[string]string {
		mu.Lock()
		defer mu.Unlock()
		out := map[string]string{}
		for _, r := range runs {
			out[r.key] = r.replica
		}
		return out
	}
	eventually(t, "every key handled", func() bool { return len(handled()) == 40 })
	mu.Lock()
	by := map[string]int{}
	for _, r := range runs {
		ns, name, _ := strings.Cut(r.key, "/")
		if want := shard.RecordName("work", shard.Of(ns, name, shards)); r.token != want {
			t.Errorf("%s handled %s with the token of %q, want %q", r.replica, r.key, r.token, want)
		}
		by[r.replica]++
	}
	mu.Unlock()
	if by["a"] == 0 || by["b"] == 0 {
		t.Errorf("runs per replica %v: both should work", by)
	}
	mu.Lock()
	if len(leaderRuns) != 1 {
		t.Errorf("the single-leader group ran on %v: want one replica", leaderRuns)
	}
	mu.Unlock()
	_, metrics := get(t, "http://"+a.MetricsAddr()+"/metrics")
	for _, m := range []string{"rein_shard_held", "rein_shard_moves_total", "rein_shard_keys"} {
		if !strings.Contains(metrics, m) {
			t.Errorf("/metrics lacks %s", m)
		}
	}

	// b stops: a takes every shard, and handles new keys of all of them.
	stopped(rb)
	eventually(t, "a holds every shard", func() bool { return holds(a) == shards })
	mu.Lock()
	runs = nil
	mu.Unlock()
	for i := range 40 {
		if _, err := admin.CoreV1().ConfigMaps(ns).Create(context.Background(), &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("late-%02d", i)}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "a handles every new key", func() bool {
		h := handled()
		for i := range 40 {
			if h[fmt.Sprintf("%s/late-%02d", ns, i)] != "a" {
				return false
			}
		}
		return true
	})
	stopped(ra)
	leases, err := admin.CoordinationV1().Leases(ns).List(context.Background(), metav1.ListOptions{LabelSelector: shard.LabelRole + "=member"})
	if err != nil {
		t.Fatal(err)
	}
	if len(leases.Items) != 0 {
		t.Errorf("%d member Leases left after both replicas stopped", len(leases.Items))
	}
}

// TestShardMemberBehindABlackHoleRegainsItsShare (issue 29): a member whose
// path to the apiserver is a black hole loses its shards to the other
// member once its member Lease expires; when the path returns it holds its
// share again within the renew deadline + 1 s, ten times in a row.
func TestShardMemberBehindABlackHoleRegainsItsShare(t *testing.T) {
	admin := testkit.Admin(t, env)
	ns := newNamespace(t, admin)
	const shards = 8
	path, err := netfault.Start(env.Config().Host)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = path.Close() }()
	member := func(name string, cfg *rest.Config) *start.Replica {
		o := testOptions(t, ns)
		o.IdentityBase, o.Registry, o.Config = name, nil, cfg
		f, err := framework.NewFactory(cfg, clientgoscheme.Scheme, framework.Options{Namespace: ns})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := engine.OpsOf(f).Controller(factorytest.ConfigMaps); err != nil {
			t.Fatal(err)
		}
		r, err := start.New(o, start.Group{LeaseName: "work", Shards: shards, Factories: []start.Starter{f}})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	cut := rest.CopyConfig(env.Config())
	cut.Host = "https://" + path.Addr()
	a, b := member("a", env.Config()), member("b", cut)
	for _, r := range []*start.Replica{a, b} {
		stop, done := run(r)
		defer func() {
			stop()
			<-done
		}()
	}
	holds := func(r *start.Replica) int {
		_, body := get(t, "http://"+r.ProbeAddr()+"/readyz")
		var n, of int
		if i := strings.Index(body, "holds "); i >= 0 {
			_, _ = fmt.Sscanf(body[i:], "holds %d of %d", &n, &of)
		}
		return n
	}
	eventually(t, "both members hold 4 shards", func() bool { return holds(a) == shards/2 && holds(b) == shards/2 })
	o := testOptions(t, ns)
	bound := o.RenewDeadline + time.Second
	var worst time.Duration
	for rep := range 10 {
		path.Hold(netfault.Both)
		testkit.Eventually(t, 30*time.Second, 20*time.Millisecond, "the other member holds every shard", func() bool { return holds(a) == shards && holds(b) == 0 })
		path.Release()
		released := time.Now()
		testkit.Eventually(t, bound+30*time.Second, 20*time.Millisecond, "the member holds its share again", func() bool { return holds(b) == shards/2 })
		took := time.Since(released)
		worst = max(worst, took)
		if took > bound {
			t.Errorf("repetition %d: share regained %v after the path returned, want ≤ renew deadline + 1s = %v", rep, took.Round(time.Millisecond), bound)
		}
	}
	t.Logf("10 black holes: the member held its share again at most %v after the path returned (bound %v)", worst.Round(time.Millisecond), bound)
}
