// Package shard runs a controller's replicas active-active: keys are
// spread over a fixed number of shards, every replica holds a share of
// them, and each key has exactly one owner at a time. pkg/start uses it
// for a group with Shards > 0 (--shards); docs/sharding.md has the design
// notes and the measurements.
//
// Every replica keeps complete caches and a full queue, as a standby of a
// single-leader group does (unless pkg/start partitions the caches: then
// a replica caches the objects of the shards it holds, Config.Prepare
// lists a shard's, Config.OnStop drops them, and workers enter by shard,
// Member.EnterShard); a worker runs a key only while its replica
// holds the key's shard (Member.Enter), in a context that ends when the
// shard moves, and carries the shard's hold (a fence.Hold): every write of
// a handler passes fence.Transport under it, and writes in no shard's
// context pass under the member's own fence (Member.Fence).
//
// # Records
//
// The group's Leases live in one namespace, labelled
// shard.rein.dev/group=<group> (names, labels and marks: records.go):
//
//   - A member Lease per replica (<group>-member-<hash of identity>): the
//     replica's heartbeat, renewed every RetryPeriod, and its clock. One
//     Lease is one incarnation of a replica, named by its UID. Marks are
//     annotations: shard.rein.dev/state "leaving" (a graceful stop) or
//     "dead" (final: a dead incarnation never holds anything again).
//   - A record per shard (<group>-shard-<n>): holderIdentity and the
//     annotation shard.rein.dev/holder-uid name the incarnation that holds
//     it; leaseTransitions counts its moves. It is written only when the
//     shard moves, never renewed, so shards cost nothing at rest.
//
// # Algorithm
//
// Each replica lists and watches the group's Leases (one watch, a label
// selector: Member.watch, member.go; its view of them: observe.go) and acts
// on what it has seen, in one loop (protocol.step, protocol.go). Each
// step's code is in the file named after it:
//
//  1. Join (join.go): once its view is listed and its watch healthy, create
//     the member Lease. A Lease of an earlier incarnation in its place is
//     deleted first (UID and resourceVersion preconditions).
//  2. Renew (renew.go, with the member fence): update the member Lease
//     every RetryPeriod from the copy of its own last write
//     (resourceVersion precondition). The member fence is open while the
//     last successful renew was SENT less than RenewDeadline ago, by the
//     monotonic clock (as pkg/leader's). A renew that conflicts reads the
//     Lease: marked dead, deleted or replaced means this incarnation is
//     over; every shard stops at once and the replica joins again as a new
//     incarnation.
//  3. Mark the dead (markdead.go): a member Lease that has not changed for
//     its recorded leaseDurationSeconds, counted on this replica's clock
//     from when its watch showed the last change, is marked dead with an
//     update conditional on the version seen. A renew in between makes the
//     mark conflict. Countdowns restart whenever the watch is
//     re-established (observe.go): not seeing a renew during a gap is no
//     evidence of death.
//  4. Assign (assign.go): from the members in its view that are neither
//     dead nor leaving, it computes who should hold each shard:
//     bounded-load rendezvous hashing, current holders first, so held
//     counts differ by at most one and a join or a leave moves about N/M
//     shards.
//  5. Move (move.go), each move one conditional write of a record (move
//     count + 1):
//     - hand off (handoff.go) a shard it holds and is no longer assigned:
//     stop taking its keys, let the handlers in flight finish (DrainGrace
//     at most), shut it (no write passes, the context ends), wait until any
//     request a shut handler left in the network is past its deadline, then
//     write the record naming the assignee ("" when none);
//     - claim (claim.go) a shard whose record names nobody live (free, or
//     an incarnation marked dead, deleted or replaced) when it is the
//     assignee, or after FallbackDelay when the assignee has not;
//     - create (claim.go) a missing record when it is the assignee.
//  6. Start (start.go) a shard when the record names this incarnation and
//     it is assigned here: open its gate (a new context and fencing token)
//     and queue every cached key of the shard (Config.OnStart).
//  7. Leave (leave.go), when Run's context ends: mark the member Lease
//     leaving (the next renew writes the mark), so the others drop it from
//     the assignment; hand each shard off as in 5; once no record names it,
//     delete the member Lease. Member Leases marked dead are deleted by the
//     live members once no record names them (leave.go too).
//
// A replica's view of a record only moves forward (a version whose move
// count is not above the one it knows is ignored; observe.go), so a late
// watch event of its own claim cannot make it hold a shard it has handed
// off. A record write whose outcome is unknown (a timeout, a cut
// connection) is settled (move.go) by a write of the record as last seen,
// move count raised: it succeeds only if the lost write never landed, and a
// late delivery of that write then conflicts.
//
// # Safety
//
// A record leaves its holder r in one of two ways. (a) r writes it
// itself, after its shard's handlers returned and no request of theirs can
// still be in the network. (b) Another replica claims it after r's
// incarnation was marked dead; the mark was conditional on a version of
// r's member Lease that it saw unchanged for LeaseDuration, so r's last
// successful renew was sent at least LeaseDuration before, and r's member
// fence closed RenewDeadline after that send: before the mark, given the
// clock-rate condition below. Two would-be holders (views that differ)
// cannot both take a shard: each write is conditional on the version read.
// Membership views decide who should hold a shard, never who does.
//
// The model test (model_test.go) runs the protocol of up to five replicas
// against an in-memory store with a fake clock through random joins,
// leaves, kills, pauses past the lease, watch gaps, lost and late writes
// and writing handlers, and checks at every step that no shard is writable
// by two replicas and that no write is sent while another replica's write
// to the shard may still land.
//
// # Limits
//
//   - Clocks: as pkg/leader, clock rates may differ by less than a factor
//     LeaseDuration/RenewDeadline; offsets do not matter.
//   - Writes go through the fence only in this process: a write already in
//     the network when a shard's fence closes is not caught by it. A
//     handoff waits for every request of the shard to return (or to pass
//     its deadline); a takeover relies on the margin LeaseDuration −
//     RenewDeadline and on each request's deadline being cut to the
//     fence's. The apiserver's fencing policy (pkg/leader, "Server-side
//     fencing") checks one Lease per binding and does not cover shards
//     yet; writes carry resourceVersion preconditions (pkg/generic), and
//     external systems get a fencing token per shard.
//   - A handler's writes are fenced by its key's shard. A handler that
//     writes objects of other keys (children) writes them under its own
//     key's shard, which is right for objects it owns. An Enqueue of
//     another kind's key from a handler queues it on this replica only:
//     if another replica holds that key's shard, the key is dropped here
//     and not run there. Watch related objects with informer event
//     handlers (pkg/related), which run on every replica.
//   - A partitioned replica's shards make no progress until its member
//     Lease expires and they are taken over (LeaseDuration).
//   - A replica whose watch is broken while its renews succeed keeps its
//     shards and works on them, but makes no move (it cannot see the
//     records) until the watch is back: joins and leaves of others wait
//     for it.
//   - Changing the shard count moves most keys: treat it as a redeploy.
//   - A graceful handoff takes a drain: a handler that runs longer than
//     DrainGrace is cut off, and the handoff then waits until its requests'
//     deadlines (at most RenewDeadline) have passed.
//
// # Fencing tokens
//
// A shard's handlers get a context carrying the token
// <namespace>/<group>-shard-<n>/<moves> (fence.TokenFrom; fence.Transport
// sends it and refuses calls once the shard has moved). The move count of
// a record grows with every holder, so the rule of pkg/leader's tokens
// holds per shard: a receiver keeps the highest token per resource and
// refuses lower ones. A key always maps to the same shard, so its tokens
// always name the same record.
//
// # Cost
//
// At rest a replica renews its member Lease (one write per RetryPeriod:
// 0.5 requests/s with the default 2s) and holds one watch; records are
// written only on moves. Requests grow with replicas, not with shards.
package shard
