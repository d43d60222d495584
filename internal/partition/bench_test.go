package partition

import (
	"context"
	"flag"
	"fmt"
	"strings"
	"sync"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/rein-k8s/rein/internal/testkit"
)

var benchObjects = flag.Int("partition-objects", 5000, "BenchmarkListHeld: ConfigMaps of 1 KiB data to list")

// BenchmarkListHeld compares the ways a replica that holds 4 of 16 shards
// can list them: one request whose selector ORs the 4 ranges ("or"), one
// request per shard ("each", in sequence), and, for scale, the full list
// a replica with complete caches makes ("all"). A move of one shard costs
// "or" a whole new list of the held set (a watch's selector cannot
// change), and "each" one shard's list: a quarter of it.
func BenchmarkListHeld(b *testing.B) {
	env := gated.Get(b)
	cs := testkit.Admin(b, env)
	ns := testkit.NewNamespace(b, cs, "partition-bench-")
	createBulk(b, cs, ns, *benchObjects)
	const n = 16
	held := []int{1, 5, 9, 13}
	ctx := context.Background()
	list := func(b *testing.B, sel string) int {
		l, err := cs.CoreV1().ConfigMaps(ns).List(ctx, metav1.ListOptions{ShardSelector: sel})
		if err != nil {
			b.Fatal(err)
		}
		if sel != "" && !Supported(l.ListMeta) {
			b.Fatal("the apiserver ignored the shard selector")
		}
		return len(l.Items)
	}
	b.Run("or", func(b *testing.B) {
		objects := 0
		for b.Loop() {
			objects = list(b, Selector(ByUID, held, n))
		}
		b.ReportMetric(float64(objects), "objects/op")
	})
	b.Run("each", func(b *testing.B) {
		objects := 0
		for b.Loop() {
			objects = 0
			for _, s := range held {
				objects += list(b, Selector(ByUID, []int{s}, n))
			}
		}
		b.ReportMetric(float64(objects), "objects/op")
	})
	b.Run("all", func(b *testing.B) {
		objects := 0
		for b.Loop() {
			objects = list(b, "")
		}
		b.ReportMetric(float64(objects), "objects/op")
	})
}

// createBulk creates count ConfigMaps of 1 KiB data in ns, 8 at a time.
func createBulk(b *testing.B, cs kubernetes.Interface, ns string, count int) {
	b.Helper()
	data := map[string]string{"data": strings.Repeat("x", 1024)}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for w := range 8 {
		wg.Go(func() {
			for i := w; i < count; i += 8 {
				_, err := cs.CoreV1().ConfigMaps(ns).Create(context.Background(), &corev1.ConfigMap{
					ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("cm-%d", i)}, Data: data,
				}, metav1.CreateOptions{})
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
}
