package partition

import (
	"context"
	"fmt"
	"math/bits"
	"strconv"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/sharding"
)

// The fields a group's objects can be partitioned by: the apiserver's
// field paths.
const (
	// ByUID spreads objects evenly, whatever their namespaces.
	ByUID = "object.metadata.uid"
	// ByNamespace keeps a namespace's objects in one shard: for handlers
	// that read their neighbours, at the cost of an even spread.
	ByNamespace = "object.metadata.namespace"
)

// ValidField reports whether field is one a group can be partitioned by.
func ValidField(field string) bool { return field == ByUID || field == ByNamespace }

// OfHash returns the shard of hash h among n shards (n > 0): ⌊h·n/2^64⌋.
func OfHash(h uint64, n int) int {
	hi, _ := bits.Mul64(h, uint64(n))
	return int(hi)
}

// Hash returns the apiserver's hash of a field's value (a UID, a
// namespace).
func Hash(value string) uint64 {
	// sharding.HashField is the apiserver's own function; its hex form is
	// parsed back rather than FNV recomputed here, so that the two cannot
	// drift apart.
	h, err := strconv.ParseUint(sharding.HashField(value), 16, 64)
	if err != nil {
		// HashField prints 16 hex digits of a uint64: this cannot happen.
		return 0
	}
	return h
}

// OfValue returns the shard, among n, of the object whose partition field
// has value.
func OfValue(value string, n int) int { return OfHash(Hash(value), n) }

// Of returns the shard, among n, of obj by field (ByUID or ByNamespace).
func Of(obj runtime.Object, field string, n int) (int, error) {
	v, err := sharding.ResolveFieldValue(obj, field)
	if err != nil {
		return 0, err
	}
	return OfValue(v, n), nil
}

// start returns the first hash of shard s of n (0 <= s < n): ⌈s·2^64/n⌉,
// the least h with ⌊h·n/2^64⌋ = s.
func start(s, n int) uint64 {
	// (s·2^64 + n − 1) / n, in 128 bits; s < n keeps the quotient in 64.
	q, _ := bits.Div64(uint64(s), uint64(n-1), uint64(n))
	return q
}

// bound is start(s, n) in the selector's notation; bound(n, n) is 2^64.
func bound(s, n int) string {
	if s == n {
		return "0x10000000000000000"
	}
	return fmt.Sprintf("0x%016x", start(s, n))
}

// Requirements returns the hash ranges of shards (each in [0, n)) as
// selector terms on field, neighbouring shards joined into one term,
// in shard order. No shards give none.
func Requirements(field string, shards []int, n int) []sharding.ShardRangeRequirement {
	held := make([]bool, n)
	for _, s := range shards {
		if s >= 0 && s < n {
			held[s] = true
		}
	}
	var reqs []sharding.ShardRangeRequirement
	for s := 0; s < n; {
		if !held[s] {
			s++
			continue
		}
		e := s
		for e < n && held[e] {
			e++
		}
		reqs = append(reqs, sharding.ShardRangeRequirement{Key: field, Start: bound(s, n), End: bound(e, n)})
		s = e
	}
	return reqs
}

// Selector returns the shard selector (metav1.ListOptions.ShardSelector)
// of shards among n on field: "" for no shards, which selects everything,
// so callers must not list with it.
func Selector(field string, shards []int, n int) string {
	reqs := Requirements(field, shards, n)
	if len(reqs) == 0 {
		return ""
	}
	return sharding.NewSelector(reqs...).String()
}

// Supported reports whether the apiserver applied the shard selector of a
// list request, from the list's metadata: an apiserver without the
// feature gate drops the selector and answers with every object, and
// without shardInfo.
func Supported(list metav1.ListMeta) bool { return list.ShardInfo != nil }

// Probe asks the apiserver whether it applies shard selectors to a kind:
// one list of at most one object, with a selector of every shard on
// field, through list (the kind's list call, returning the list's
// metadata). A replica probes each partitioned kind once, before its
// caches start, and caches the kind in full when the answer is no.
func Probe(ctx context.Context, field string, list func(context.Context, metav1.ListOptions) (metav1.ListMeta, error)) (bool, error) {
	meta, err := list(ctx, metav1.ListOptions{Limit: 1, ShardSelector: Selector(field, []int{0}, 1)})
	if err != nil {
		return false, err
	}
	return Supported(meta), nil
}
