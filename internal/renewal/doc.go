// Package renewal is the one implementation of the monotonic fence both
// kinds of hold in rein rest on, a leadership term (pkg/leader) and a
// shard member's Lease (pkg/shard): open from the send of the write that
// took a Lease until RenewDeadline after the send of the last successful
// renew, by this process's monotonic clock, read at every call (so a write
// after a SIGSTOP/SIGCONT asks the clock, not a timer that has not fired
// yet). A Renewal is a fence.Hold; its refusals are *fence.Error.
// Only the electors open and close it; users see it as a fence.Hold
// (leader.Elector.Fence, shard.Member.Fence).
package renewal
