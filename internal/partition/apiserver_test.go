package partition

import (
	"context"
	"fmt"
	"os"
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"

	"github.com/rein-k8s/rein/internal/testkit"
	"github.com/rein-k8s/rein/pkg/testenv"
)

// Two control planes: one serves sharded lists and watches, the other is
// an apiserver without the feature gate (the default of v1.37).
var (
	gated = testkit.LazyEnv{Options: testenv.Options{
		APIServerFlags: map[string][]string{"feature-gates": {"ShardedListAndWatch=true"}},
	}}
	ungated = testkit.LazyEnv{Options: testenv.Options{}}
)

// runUngated runs the tests inside ungated.Main, which stops its control
// plane after them; gated.Main wraps it and stops the other.
type runUngated struct{ m *testing.M }

func (r runUngated) Run() int { return ungated.Main(r.m) }

func TestMain(m *testing.M) { os.Exit(gated.Main(runUngated{m})) }

// createConfigMaps creates count ConfigMaps in ns and returns their shard
// among n, by UID, keyed by name.
func createConfigMaps(t *testing.T, cs kubernetes.Interface, ns, prefix string, count int) map[string]string {
	t.Helper()
	uids := map[string]string{}
	for i := range count {
		cm, err := cs.CoreV1().ConfigMaps(ns).Create(context.Background(), &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("%s-%d", prefix, i)},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		uids[cm.Name] = string(cm.UID)
	}
	return uids
}

func names(list *corev1.ConfigMapList) []string {
	out := make([]string, 0, len(list.Items))
	for _, cm := range list.Items {
		if cm.Name != "kube-root-ca.crt" {
			out = append(out, cm.Name)
		}
	}
	slices.Sort(out)
	return out
}

// The apiserver's shard filtering and OfValue agree: for several shard
// counts, the list of each shard's selector holds exactly the objects
// whose UID hash OfValue puts in it, and the list says it was filtered.
// Shards held together (neighbours joined, others OR-ed) list the union.
func TestServerFiltersAsOfValue(t *testing.T) {
	env := gated.Get(t)
	cs := testkit.Admin(t, env)
	ns := testkit.NewNamespace(t, cs, "partition-")
	uids := createConfigMaps(t, cs, ns, "cm", 60)
	ctx := context.Background()

	expect := func(shards []int, n int) []string {
		var out []string
		for name, uid := range uids {
			if slices.Contains(shards, OfValue(uid, n)) {
				out = append(out, name)
			}
		}
		slices.Sort(out)
		return out
	}
	check := func(shards []int, n int) {
		t.Helper()
		sel := Selector(ByUID, shards, n)
		list, err := cs.CoreV1().ConfigMaps(ns).List(ctx, metav1.ListOptions{ShardSelector: sel})
		if err != nil {
			t.Fatalf("shards %v of %d: %v", shards, n, err)
		}
		if !Supported(list.ListMeta) {
			t.Fatalf("shards %v of %d: the gated apiserver set no shardInfo", shards, n)
		}
		if got, want := names(list), expect(shards, n); !slices.Equal(got, want) {
			t.Fatalf("shards %v of %d (%s): the apiserver lists %v, OfValue says %v", shards, n, sel, got, want)
		}
	}
	for _, n := range []int{1, 2, 3, 5, 7, 16} {
		for s := range n {
			check([]int{s}, n)
		}
	}
	check([]int{0, 1, 4}, 5) // one joined range, one more OR-ed
	check([]int{0, 2, 4, 6}, 7)
}

// A watch with a shard selector sees the new objects of its shards and no
// others.
func TestServerWatchFilters(t *testing.T) {
	env := gated.Get(t)
	cs := testkit.Admin(t, env)
	ns := testkit.NewNamespace(t, cs, "partition-watch-")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	const n = 3
	sel := Selector(ByUID, []int{0}, n)
	list, err := cs.CoreV1().ConfigMaps(ns).List(ctx, metav1.ListOptions{ShardSelector: sel})
	if err != nil {
		t.Fatal(err)
	}
	w, err := cs.CoreV1().ConfigMaps(ns).Watch(ctx, metav1.ListOptions{ShardSelector: sel, ResourceVersion: list.ResourceVersion})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()

	uids := createConfigMaps(t, cs, ns, "cm", 30)
	// A last object of shard 0: once the watch has delivered it, it has
	// delivered everything written before it.
	var last string
	for i := 0; last == ""; i++ {
		for name, uid := range createConfigMaps(t, cs, ns, fmt.Sprintf("end%d", i), 1) {
			uids[name] = uid
			if OfValue(uid, n) == 0 {
				last = name
			}
		}
	}
	var seen []string
	for done := false; !done; {
		ev := testkit.Receive(t, w.ResultChan(), 30*time.Second, "the watch to deliver "+last)
		if ev.Type != watch.Added {
			continue
		}
		name := ev.Object.(*corev1.ConfigMap).Name
		if name == "kube-root-ca.crt" {
			continue
		}
		seen = append(seen, name)
		done = name == last
	}
	var want []string
	for name, uid := range uids {
		if OfValue(uid, n) == 0 {
			want = append(want, name)
		}
	}
	slices.Sort(seen)
	slices.Sort(want)
	if !slices.Equal(seen, want) {
		t.Fatalf("the watch of shard 0 of %d delivered %v, OfValue says %v", n, seen, want)
	}
}

// An apiserver without the feature gate ignores the selector: it answers
// with every object and no shardInfo, which is what Supported detects.
func TestUngatedServerIgnoresSelector(t *testing.T) {
	env := ungated.Get(t)
	cs := testkit.Admin(t, env)
	ns := testkit.NewNamespace(t, cs, "partition-off-")
	uids := createConfigMaps(t, cs, ns, "cm", 20)
	list, err := cs.CoreV1().ConfigMaps(ns).List(context.Background(), metav1.ListOptions{ShardSelector: Selector(ByUID, []int{0}, 4)})
	if err != nil {
		t.Fatal(err)
	}
	if Supported(list.ListMeta) {
		t.Fatalf("an apiserver without the gate set shardInfo %v", list.ShardInfo)
	}
	if got := len(names(list)); got != len(uids) {
		t.Fatalf("an apiserver without the gate listed %d of %d objects", got, len(uids))
	}
	if ok, err := Probe(context.Background(), ByUID, configMapLister(cs, ns)); err != nil || ok {
		t.Fatalf("Probe of an apiserver without the gate = %v, %v; want false", ok, err)
	}
}

// Probe tells the two apiservers apart, by UID and by namespace, in a
// namespace, in an empty one and across all of them.
func TestProbe(t *testing.T) {
	cs := testkit.Admin(t, gated.Get(t))
	ns := testkit.NewNamespace(t, cs, "partition-probe-")
	createConfigMaps(t, cs, ns, "cm", 3)
	empty := testkit.NewNamespace(t, cs, "partition-probe-empty-")
	for _, field := range []string{ByUID, ByNamespace} {
		for _, in := range []string{ns, empty, ""} {
			if ok, err := Probe(context.Background(), field, configMapLister(cs, in)); err != nil || !ok {
				t.Fatalf("Probe(%s) in namespace %q of the gated apiserver = %v, %v; want true", field, in, ok, err)
			}
		}
	}
}

func configMapLister(cs kubernetes.Interface, ns string) func(context.Context, metav1.ListOptions) (metav1.ListMeta, error) {
	return func(ctx context.Context, opts metav1.ListOptions) (metav1.ListMeta, error) {
		l, err := cs.CoreV1().ConfigMaps(ns).List(ctx, opts)
		if err != nil {
			return metav1.ListMeta{}, err
		}
		return l.ListMeta, nil
	}
}
