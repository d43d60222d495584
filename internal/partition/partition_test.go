package partition

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/sharding"
	"k8s.io/apimachinery/pkg/types"
)

// inRange is the apiserver's test of a hash against one term.
func inRange(h uint64, r sharding.ShardRangeRequirement) bool {
	hex := fmt.Sprintf("0x%016x", h)
	return !sharding.HexLess(hex, r.Start) && sharding.HexLess(hex, r.End)
}

// The ranges of n shards cover the hash space without overlap, and the
// shard of a hash is the one whose range holds it, at the edges of every
// range too.
func TestRangesMatchOfHash(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{1, 2, 3, 5, 7, 16, 100, 4096} {
		var hashes []uint64
		for s := range n {
			st := start(s, n)
			hashes = append(hashes, st, st-1, st+1)
		}
		hashes = append(hashes, 0, math.MaxUint64)
		for range 1000 {
			hashes = append(hashes, rng.Uint64())
		}
		ranges := make([][]sharding.ShardRangeRequirement, n)
		for s := range n {
			ranges[s] = Requirements(ByUID, []int{s}, n)
			if len(ranges[s]) != 1 {
				t.Fatalf("n=%d shard %d: %d terms, want 1", n, s, len(ranges[s]))
			}
		}
		for s := 1; s < n; s++ {
			if ranges[s][0].Start != ranges[s-1][0].End {
				t.Fatalf("n=%d: shard %d starts at %s, shard %d ends at %s", n, s, ranges[s][0].Start, s-1, ranges[s-1][0].End)
			}
		}
		if ranges[0][0].Start != "0x0000000000000000" || ranges[n-1][0].End != "0x10000000000000000" {
			t.Fatalf("n=%d: ranges span %s to %s", n, ranges[0][0].Start, ranges[n-1][0].End)
		}
		for _, h := range hashes {
			want := OfHash(h, n)
			if want < 0 || want >= n {
				t.Fatalf("n=%d: OfHash(%#x) = %d", n, h, want)
			}
			// Ranges are in order (checked below), so the shard's own
			// and its neighbours' are the ones to test.
			for s := max(want-1, 0); s < min(want+2, n); s++ {
				if got := inRange(h, ranges[s][0]); got != (s == want) {
					t.Fatalf("n=%d hash %#x: in range of shard %d (%v) = %v, but OfHash says %d", n, h, s, ranges[s][0], got, want)
				}
			}
		}
	}
}

// An object's shard by Of is the one whose selector the apiserver's
// matcher (sharding.Selector.Matches) accepts it with, by UID and by
// namespace.
func TestOfAgreesWithSelectorMatches(t *testing.T) {
	const n = 7
	for _, field := range []string{ByUID, ByNamespace} {
		sels := make([]sharding.Selector, n)
		for s := range n {
			sels[s] = sharding.NewSelector(Requirements(field, []int{s}, n)...)
		}
		for i := range 500 {
			cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{
				Namespace: fmt.Sprintf("ns-%d", i), Name: "x", UID: types.UID(fmt.Sprintf("uid-%d", i)),
			}}
			got, err := Of(cm, field, n)
			if err != nil {
				t.Fatal(err)
			}
			for s := range n {
				ok, err := sels[s].Matches(cm)
				if err != nil {
					t.Fatal(err)
				}
				if ok != (s == got) {
					t.Fatalf("%s of %s/%s: selector of shard %d matches=%v, Of says %d", field, cm.Namespace, cm.UID, s, ok, got)
				}
			}
		}
	}
}

func TestSelectorJoinsNeighbours(t *testing.T) {
	for _, c := range []struct {
		shards []int
		n      int
		want   string
	}{
		{nil, 4, ""},
		{[]int{0, 1, 2, 3}, 4, "shardRange(object.metadata.uid, '0x0000000000000000', '0x10000000000000000')"},
		{[]int{3, 0, 1}, 4, "shardRange(object.metadata.uid, '0x0000000000000000', '0x8000000000000000') || shardRange(object.metadata.uid, '0xc000000000000000', '0x10000000000000000')"},
		{[]int{1}, 3, "shardRange(object.metadata.uid, '0x5555555555555556', '0xaaaaaaaaaaaaaaab')"},
		{[]int{5, -1}, 4, ""}, // out of range: ignored
	} {
		if got := Selector(ByUID, c.shards, c.n); got != c.want {
			t.Errorf("Selector(%v of %d) = %q, want %q", c.shards, c.n, got, c.want)
		}
	}
}
