// Package partition maps the shards of a sharded group (pkg/shard) to
// ranges of the hash that the apiserver's shard selectors filter on
// (server-side sharded list and watch, KEP-5866, feature gate
// ShardedListAndWatch), so that a replica can list and watch only the
// objects of the shards it holds.
//
// The hash is the apiserver's own: 64-bit FNV-1a of the object's
// metadata.uid (or metadata.namespace), computed here with
// k8s.io/apimachinery/pkg/sharding, the package the apiserver uses. Shard s
// of n covers the hashes h with s·2^64/n <= h < (s+1)·2^64/n, so the shard
// of a hash is ⌊h·n/2^64⌋ (one multiplication) and the ranges of
// neighbouring shards join into one shardRange term. A key's shard and
// the selector that lists it therefore agree by construction: the test
// against a real apiserver checks it for several shard counts.
//
// Neither a UID nor a namespace ever changes, so an object never moves
// from one range to another: a watch with a selector sees an object's
// whole life, and never a delete for an object that merely left the range.
//
// An apiserver without the feature gate ignores the selector and answers
// with every object. Supported tells the two apart from a list response:
// the apiserver echoes the selector it applied in metadata.shardInfo.
package partition
