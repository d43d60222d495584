package engine_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/rein-k8s/rein/internal/engine"
	"github.com/rein-k8s/rein/internal/testkit/factorytest"
)

// BenchmarkAwaitCurrent measures what "fresh first" adds to the start of a
// hold when the cache is current: one consistent metadata list of the
// kind and the comparison with the cache, at 1000 and 5000 ConfigMaps.
func BenchmarkAwaitCurrent(b *testing.B) {
	for _, objects := range []int{1000, 5000} {
		b.Run(fmt.Sprintf("objects=%d", objects), func(b *testing.B) {
			ns := newNamespace(b)
			createConfigMaps(b, ns, objects)
			f := newFactory(b, ns, engine.Options{})
			controller(b, f, factorytest.ConfigMaps)
			run(b, f)
			ops := engine.OpsOf(f)
			b.ResetTimer()
			began := time.Now()
			for range b.N {
				if err := ops.AwaitCurrent(b.Context(), nil); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(time.Since(began).Microseconds())/float64(b.N)/1000, "ms/hold")
		})
	}
}
