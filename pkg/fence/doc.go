// Package fence is the hold a write runs under, at the bottom of rein's
// package graph: elections mint holds, the engine and every client only
// read them.
//
// A Hold is a right to write that ends: a leadership term of pkg/leader or
// a shard held by pkg/shard. It has a fencing Token, a number that only
// grows from one hold of a Lease to the next, and a Deadline: the instant
// after which no write of the hold may still be in flight, or an *Error
// when the hold no longer allows writes.
//
// A handler's context carries its hold (WithHold; HoldFrom reads it).
// Transport is the one RoundTripper that enforces it, for the apiserver
// clients the engine builds and for calls to systems outside the cluster
// alike. For each request it finds the hold in the request's context, or
// else the fallback hold its owner gave it (the replica-wide hold that
// pkg/start installs: events and hooks write under it), and then:
//
//  1. refuses a mutating request (POST, PUT, PATCH, DELETE) with the
//     hold's *Error while the hold does not allow writes, and with
//     ErrNoHold when there is no hold at all, unless the context is marked
//     Unfenced (a replica run without election);
//  2. cuts the request's deadline to the hold's, so that no request waits,
//     or is retried, past the instant the hold may have passed to another
//     replica;
//  3. puts the token in the Rein-Fencing-Token header (TokenHeader) of
//     every request, for a receiver that keeps the highest token per
//     resource and refuses lower ones. Systems that are not HTTP read the
//     token with TokenFrom and should apply the same rule.
//
// Reads pass without a hold: a standby keeps its caches warm.
//
// Both kinds of hold rest on one monotonic fence (rein's internal/renewal):
// open from the send of the write that took a Lease until RenewDeadline
// after the send of the last successful renew, by this process's monotonic
// clock, read at every call (so a write after a SIGSTOP/SIGCONT asks the
// clock, not a timer that has not fired yet).
//
// Limits: the fence decides when a request leaves the process. A request
// already in the network when the hold ends can still arrive after a
// successor's first write; rein's writes carry resourceVersion
// preconditions for that reason, and external systems must compare tokens.
package fence
