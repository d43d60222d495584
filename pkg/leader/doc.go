// Package leader elects one leader among the replicas of a controller with a
// coordination.k8s.io/v1 Lease, and fences the writes of a replica that may
// no longer be the leader.
//
// The Lease holds the same record as client-go's tools/leaderelection
// (holderIdentity, leaseDurationSeconds, acquireTime, renewTime,
// leaseTransitions) and is judged by the same expiry rule, so rein replicas
// and client-go replicas can campaign for one Lease side by side.
//
// # Algorithm
//
//  1. A candidate lists the Lease (field selector metadata.name=<name>) and
//     watches it from the list's resourceVersion. Each time the watch shows
//     the record change, the candidate notes the time on its OWN monotonic
//     clock. That is the only time it trusts: the times in the record were
//     read from other machines' clocks and are never compared with its own.
//  2. No Lease: create it naming itself. Create is atomic; of candidates
//     racing, one wins and the others see AlreadyExists and wait for the
//     watch to show the winner.
//  3. Holder "" (released; client-go writes holderIdentity "" and
//     leaseDurationSeconds 1): take it at once, on the watch event.
//  4. Otherwise set a timer for observed change + the record's
//     leaseDurationSeconds. Every change re-arms it; when it fires, the
//     holder has not renewed for a lease duration by this clock: take the
//     lease over.
//  5. Taking over is an update with the observed resourceVersion as
//     precondition, so a renew this candidate has not seen yet makes the
//     update fail (409 Conflict) instead of deposing a live leader. After a
//     conflict the candidate waits for the watch to show what changed.
//  6. The leader renews every RetryPeriod with an update from its cached
//     copy of its own last write (that write's resourceVersion as
//     precondition). On a conflict it reads the lease: another holder means
//     the term is lost at once. Other failures are retried every
//     RetryPeriod until RenewDeadline has passed since the last successful
//     renew was SENT; then the term is lost.
//  7. The fence (Fence, a fence.Hold) is open while a term is live and
//     now − (send time of the last successful renew) < RenewDeadline. A
//     timer set for that deadline cancels Term.Context the moment it
//     passes; every write checks the clock itself as well.
//  8. Release stops renewing, closes the fence, and writes holder "" with
//     the resourceVersion of the term's last successful write as
//     precondition. If the lease changed since, it is someone else's: the
//     release is refused and reported, never retried over the new holder.
//
// # Safety limits
//
// The election is safe under these conditions, and not otherwise:
//
//   - Clock RATE skew is bounded. The leader stops at RenewDeadline after it
//     sent its last renew, on its clock; a standby takes over
//     LeaseDuration after it saw that renew, on its clock; the renew was
//     sent before it was stored and stored before it was seen. So the
//     leader stops at least LeaseDuration − RenewDeadline (5s with the
//     defaults 15s/10s/2s) before any standby starts, provided the clocks
//     run at rates within a ratio of LeaseDuration/RenewDeadline (1.5) of
//     each other. Clock OFFSETS do not matter: no timestamp is compared
//     across machines.
//   - The process clock keeps counting. Go's monotonic clock runs on while
//     a process is stopped (SIGSTOP), and the fence reads it at every
//     write, so the first write after SIGCONT is refused. It does not count
//     time a whole machine or VM spends suspended: a replica resumed after
//     a suspend longer than the margin may write before it notices.
//   - Writes go through the fence. Fencing only covers requests sent
//     through fence.Transport with the term (a fence.Hold) in their
//     context, or the elector's Fence as pkg/framework's fallback hold. It
//     is a check in this process, not at the apiserver: a write that passed
//     the check just before the deadline can still arrive after it. The
//     transport cuts every fenced write's deadline to the fence's, so the
//     client gives up
//     (and cancels the request) before a standby can take over; a request
//     held in a partitioned network is still delivered with its
//     cancellation right behind it, and the apiserver may commit it before
//     it sees the cancellation. Server-side fencing (below) closes that.
//   - Identities are unique. A replica that finds its own identity in the
//     lease may take it at once; NewIdentity adds a random suffix so that
//     two processes never share one. As a further guard, an elector only
//     treats a record as its own when it wrote that exact renewTime.
//   - Mixed with client-go electors: client-go compares records to the
//     second, so a rein leader counts a renew for its fence only when the
//     record changed at that precision (with RetryPeriod < 1s the fence is
//     extended about once a second, so RenewDeadline must exceed
//     1s + RetryPeriod with room for a slow renew); and a client-go leader
//     keeps leading
//     for up to RetryPeriod + RenewDeadline after its last renew, so set
//     LeaseDuration > RenewDeadline + RetryPeriod where both run.
//
// # Why watch instead of poll
//
// client-go's standbys GET the Lease every RetryPeriod, forever: with the
// defaults, every standby sends a request each 2s to learn, nearly always,
// that nothing changed, and a released lease is noticed only at the next
// poll, up to 2s later. A rein standby holds one watch (a single long-lived
// request) and a timer: a release reaches it as a watch event within
// milliseconds and it takes the lease with one update, and an expiry needs
// no request at all, only the local clock. A broken watch is resumed from
// the last resourceVersion, or relisted when that is too old, with backoff.
//
// # Fencing tokens
//
// The fence stops this process's writes to the apiserver; it cannot stop a
// call to another system (a cloud, DNS, a storage array) made by a paused
// or cut-off leader that does not know yet that its term ended. Those
// systems fence with tokens. Every acquisition by rein increments the
// Lease's spec.leaseTransitions (client-go increments it only when the
// holder changes; rein also when a replica takes back a lease that still
// names it), and a term's Token is the value its acquiring write stored.
//
// What is guaranteed: the tokens of successive rein terms of one Lease
// strictly increase, whichever replica holds them and however the previous
// term ended, also with client-go electors on the same Lease (they never
// lower the count). Tokens are comparable only within one Lease
// (namespace and name); fence.Token.Newer refuses to compare others. A token says
// nothing about time: a term may have ended already when its token
// arrives.
//
// What the receiving system must do (the classic fencing-token rule):
// remember, per resource it guards, the highest token it has accepted, and
// refuse a mutating request that carries a lower one. Accepting an equal
// token is right (the same term retrying); accepting a higher one moves
// the mark up. A Term is a fence.Hold, and pkg/start puts it in every
// handler's context (fence.WithHold; fence.TokenFrom reads the token). For
// HTTP, fence.Transport does the sender's part: it adds the
// Rein-Fencing-Token header, refuses writes once the term ended or its
// fence closed, and cuts each request's deadline to the fence's. For other
// protocols, pass the token's String() as a field of each call, and check
// the context before sending.
//
// # Server-side fencing
//
// The in-process fence decides when a write leaves; nothing in the
// process decides when it arrives. A partitioned network holds a leader's
// bytes while TCP retransmits and delivers them when the path comes back,
// after a standby has taken the lease. The fenced deadline makes the
// request's cancellation follow it, and the apiserver usually drops such a
// write (docs/design.md, "Writes held in the network", has the
// measurements); that is a race the apiserver happens to win, not a
// guarantee.
//
// Server-side fencing makes it one. With pkg/start's ServerSideFencing
// (--server-side-fencing), every write of the handlers names its writer as
// the field manager, rein/<lease namespace>/<lease>/<identity>, and the
// ValidatingAdmissionPolicy of FencingPolicy, bound per Lease with the Lease
// as its parameter (FencingPolicyBinding), admits such a write only while
// the Lease's holderIdentity is that identity. The check runs in the
// apiserver at admission, after the bytes arrived: a write delivered late
// by the network is refused with 403 "fenced: the writer ... does not hold
// lease ...". The policy looks only at writes whose field manager starts
// with "rein/"; everything else is admitted untouched.
//
// The window it leaves is the apiserver's parameter-cache lag: the policy
// reads the Lease from the apiserver's informer, which trails the Lease's
// commit. Until that informer has seen the new holder, the policy still
// admits the old holder's writes (and refuses the new holder's). The lag
// is shorter than a request's round trip, but not zero (docs/design.md,
// "Writes held in the network").
//
// So a term does not start writing until the policy has seen it: with
// server-side fencing, pkg/start calls Term.AwaitFencingPolicy before the
// term's workers start, which sends dry-run updates of the Lease marked
// with the new holder's field manager until the policy admits one
// (usually the first, a few milliseconds). From then on the policy refuses
// every write of the previous holder. What remains is ordered: a late
// write of the previous holder can still be committed after the Lease
// changed, but only if it was admitted before the new term's first write
// was sent, and each of rein's writes carries its object's resourceVersion
// (pkg/generic), so on any one object the two cannot both succeed on the
// same version. The e2e test checks this order by etcd revision: no
// commit of a previous holder after the new holder's first commit of its
// term (TestWritesHeldInTheNetwork, "interleaved"). Two limits of the
// probe: it cannot tell a policy that admits from a policy that is not
// installed or not loaded yet (a binding is loaded asynchronously), and
// with several apiservers each has its own informer, so the probe proves
// only that the apiserver which answered it has seen the new holder: a
// late write that reaches another one in its lag (milliseconds) is still
// admitted there.
//
// What no fence closes: a write that the apiserver received and admitted
// while its writer held the Lease, but committed after a standby took over,
// because the apiserver took longer than the margin LeaseDuration −
// RenewDeadline between admission and commit (or, for a write admitted in
// the parameter-cache lag, longer than the new term's probe and first
// write). The margin is the knob: the defaults (15s, 10s) leave 5 s.
//
// Limits, and why it is opt-in:
//   - The policy must be installed (cluster-scoped; samples/vmcontroller/
//     deploy/fencing.yaml), with a binding per Lease. While the Lease does
//     not exist, the binding admits everything: the apiserver applies a
//     binding's parameterNotFoundAction before match conditions, so Deny
//     would refuse every write in the cluster, the Lease's create included.
//   - Deletes carry no field manager: they are not checked (use UID and
//     resourceVersion preconditions). Nor are server-side applies, which
//     name their own stable manager (a manager per replica would break
//     apply's ownership).
//   - Each replica identity appears as a manager in managedFields of the
//     objects it updates; the apiserver caps update managers at 10 per
//     object (older ones merge into one "ancient-changes" entry).
//   - Field managers are limited to 128 characters: pkg/start refuses
//     lease names and identities that would pass it.
//   - Every matching write costs one CEL evaluation in the apiserver.
//
// # RBAC
//
// The elector needs get, list, watch, create and update on leases
// (coordination.k8s.io) in the lease's namespace. get, list, watch and
// update may be limited with resourceNames (list and watch carry the
// metadata.name field selector, which the apiserver authorizes as that
// name); create cannot be. A 403 is reported as a *ForbiddenError naming
// the lease and these verbs.
package leader
