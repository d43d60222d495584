// Package start runs a replica of a rein controller: the order of its life
// and its one exit path.
//
// Every replica, leader or not:
//
//  1. binds /metrics, /healthz and /readyz (an address in use fails at once);
//  2. starts its informers and waits until every cache has synced and every
//     key is queued, saying every few seconds what it still waits for (an
//     unreachable apiserver or a missing CRD keeps it unready, never
//     silently); /readyz turns green;
//  3. campaigns for its Lease (pkg/leader: a watch, not a poll).
//
// The winner starts the workers of its factories and the OnLeader hooks
// under the term's context. Its queues already hold every key, so work
// starts at once, without a relist. Every write of its handlers passes the
// lease's fence: none leaves the process once the last successful renew is
// older than the renew deadline.
//
// Shutdown order, each step for a reason:
//
//  1. stop taking keys (workers' context ends);
//  2. let running handlers and hooks finish, at most DrainGrace: the fence
//     stays open and the lease renewed meanwhile, so their writes land;
//  3. release the lease, with the resourceVersion of this replica's own
//     last write as a precondition, so a standby takes over at once and a
//     deposed replica can never blank a new holder's lease;
//  4. stop the caches, then the HTTP servers.
//
// A lease lost without being asked (renews failed past the renew deadline)
// stops the workers at once and ends the replica with ErrLeaseLost, or with
// ReturnToStandby sends it back to campaigning with warm caches.
//
// Run does all this in the background and ends the process (os.Exit) when
// the replica ends, with the codes ExitOK, ExitLeaseLost, ExitFailed and
// ExitForced: main blocks with `select {}`. New and Replica.Run are the same
// without the signals and the exit, for tests and for programs that embed a
// replica.
package start
