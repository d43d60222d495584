// Package hypervisor is the sample's stand-in for a real hypervisor: the
// external system the VirtualMachine controller drives. It exists so the
// sample can run (and be tested) without one, and so that what a
// controller gets wrong becomes observable: the multi-replica tests kill
// controller replicas and restart the hypervisor, then check through
// Stats and List that every VirtualMachine has exactly one VM, in the
// power state it asks for.
//
// To that end the simulator has what makes a real one awkward:
//
//   - VMs take time: a VM is Provisioning, Starting or Stopping for
//     Config.Transition before it is Running or Stopped, asynchronously.
//   - Calls are slow and fail: Config.Latency is added to every call and
//     Config.ErrorRate of them fail with 503 Injected (before doing
//     anything), from a seeded random source.
//   - Some images are refused (Config.RefusedImages): a permanent error,
//     422 ImageRefused, that retrying does not fix.
//   - It survives restarts: the VMs are persisted in Config.DataDir/vms.json
//     (atomically, after every change) and transitions in progress resume.
//
// And what a controller needs to be correct: creates are idempotent on a
// client token (the VirtualMachine's UID), so that a create retried after a
// lost answer, or repeated by a new leader, never makes a second VM; and a
// VM can be found by its token. Stats.Duplicates counts VMs beyond the
// first per token: it must stay 0.
//
// # HTTP API
//
// Bodies are JSON. Errors are {"code": ..., "message": ...} with the status:
// NotFound (404), BadRequest (400), ImageRefused (422), Injected (503),
// Unavailable (503, the server is closed), Internal (500, persisting
// failed), NoRoute (404, no such endpoint).
//
//	POST   /vms              create; body CreateRequest. 201 with the new VM, or
//	                         200 with the existing VM when the token is known
//	                         (the rest of the body is then ignored).
//	GET    /vms              list, sorted by ID; ?token=T keeps the VMs of token T
//	GET    /vms/{id}         one VM
//	POST   /vms/{id}/power   body {"power":"On"} or {"power":"Off"}; 200 with the VM
//	DELETE /vms/{id}         204; 404 NotFound when already gone
//	GET    /images/check     ?image=I: ImageCheck, whether a create with I
//	                         would be accepted (the catalogue check of
//	                         the sample's admission webhook)
//	GET    /stats            Stats
//	GET    /healthz          200 {"status":"ok"}
//
// Latency and injected failures apply to the /vms and /images endpoints only: /stats
// and /healthz are the test harness's view and stay reliable.
//
// # State machine
//
//	create ──► Provisioning ──(Transition)──► Running  (power On, the default)
//	                                      └─► Stopped  (power Off)
//	Running ──power Off──► Stopping ──(Transition)──► Stopped
//	Stopped ──power On───► Starting ──(Transition)──► Running
//
// Asking for the power a VM has or is moving to changes nothing. During
// Provisioning a power request only changes the target. Asking for the
// opposite of a Starting or Stopping transition turns it around (Stopping
// or Starting), for a full Transition. A VM can be deleted in any state.
//
// A token becomes free when its VM is deleted: a later create with it makes
// a new VM, with a new ID.
//
// # Fencing tokens
//
// A mutating call (create, power, delete) may carry the header
// Rein-Fencing-Token: <namespace>/<lease>/<term>, which rein's
// fence.Transport adds from the handler's term. Per VM (by its token),
// the hypervisor remembers the highest fencing token it accepted and
// answers a lower one of the same lease with 409 StaleFencingToken,
// applying nothing: the call comes from a leader whose term has ended. The
// check and the call are one step (mutating calls are serialised), so a
// stale call cannot land after a newer one. Calls without the header pass.
// /stats counts accepted, refused and unfenced calls. The marks live in
// memory: a restarted hypervisor accepts the next token it sees.
//
// # Persistence
//
// vms.json holds the VMs, the next ID, the create and delete counters and,
// for a VM in transition, when the transition is due to end. It is replaced
// by a temporary file written, fsynced and renamed over it after every
// change; a temporary file left by a crash is removed at start. A restart
// resumes each transition for the time it had left, at most one Transition
// of the new configuration. Only one Server may use a DataDir at a time.
//
// The command samples/vmcontroller/cmd/hypervisor serves this API.
package hypervisor
