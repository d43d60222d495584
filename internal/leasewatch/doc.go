// Package leasewatch keeps a view of some Leases current with one list and
// a watch: the loop pkg/leader (one Lease, by name) and pkg/shard (a
// group's Leases, by label) both stand on.
//
// The loop:
//
//  1. List the Leases the options select; on failure report it, back off
//     and list again.
//  2. Hand the list to the observer (Listed), then watch from the list's
//     resourceVersion with bookmarks, handing every event to it (Observed).
//  3. When the apiserver closes a watch that ran for a second or more (its
//     timeout), resume from the last resourceVersion seen: one request,
//     not a poll. A watch closed at once, or a watch that fails, backs off
//     and lists again (step 1); an expired resourceVersion (410) lists
//     again at once.
//
// The backoff starts again once a watch has run for a second. All waiting
// is on the given clock, so tests drive the loop with a fake one.
package leasewatch
