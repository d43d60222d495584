// Package shard is the start of sharded active-active groups (issue 14):
// every replica works, and each key has exactly one owner at a time.
//
// The protocol is designed in docs/sharding.md (member Leases as clocks,
// one record per shard as its lock, written only when the shard moves);
// it is not built yet. This package holds its deterministic parts so far:
//
//   - Of maps a key to its shard: a stable hash of namespace/name.
//   - Assign computes who should hold each shard from the members and the
//     current holders: rendezvous hashing with bounded load, so that held
//     counts differ by at most one, and current holders keep their shards
//     up to their capacity, so that a join or a leave moves few shards.
//
// Every replica computes the same assignment from the same view (the
// committed membership and records it has seen); the records, written
// with conditional updates, decide who actually holds a shard.
package shard
