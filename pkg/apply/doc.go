// Package apply keeps the children of an object as declared: a handler
// says which objects its owner should have (a Deployment, a Service, a
// ConfigMap...), and a Set makes the cluster match, with server-side apply,
// and deletes the children the owner no longer wants.
//
// # How a Set applies
//
// A Set has a name and the kinds it may contain, declared when it is made
// (Applier.Set), so that pruning knows where to look and the factory
// caches those kinds on every replica, warm before a term starts. For one
// owner, Set.Apply:
//
//  1. completes every desired object: apiVersion and kind from the scheme,
//     the owner's namespace when a namespaced child names none, the labels
//     apply.rein.dev/owner (the owner's UID) and apply.rein.dev/set, a
//     controller owner reference when the owner can own the child (same
//     namespace, or a cluster-scoped owner), and the annotation
//     apply.rein.dev/desired, a short hash of the desired object;
//  2. compares each with its cached copy: when every field of the desired
//     object is present in the cached one with an equal value, and the
//     cached copy carries the same desired hash, the child is as declared
//     and nothing is sent. The hash is what makes a field dropped from the
//     desired object count as a change (the subset check alone would pass).
//     A Set also remembers the version its last apply of each child
//     returned: until the cache has caught up with it, the child counts as
//     applied (also one just created, which the cache does not show yet),
//     so an Apply right after another sends nothing either;
//  3. sends the others as a server-side apply with the field manager
//     rein-apply/<set> (forced by default: a controller is authoritative
//     for what it declares; NoForce reports conflicts instead, naming the
//     other manager): the apiserver merges, owns the fields per manager,
//     and removes fields the set applied before and no longer declares;
//  4. deletes, with UID and resourceVersion preconditions, the objects of
//     the set's kinds that carry this owner's labels and are not desired
//     any more: those the cache shows, and those this process created
//     that the cache does not show yet.
//
// A Set only writes its own children: an object of a child's name that
// carries no owner label of its own (made by hand or by another
// controller) is reported, not taken over, unless its controller
// reference names the owner (a child made before the owner's controller
// used a Set is adopted); so is one that another set of the same owner
// declares. The check reads the cache: an object created an instant
// before a Set first applies a child of its name may not be there yet.
//
// So at steady state, when the cluster matches, Apply sends no request at
// all: no read (the caches answer) and no write. A child edited or deleted
// by hand is restored the next time its owner is applied (a related watch
// makes that happen at once; see pkg/related).
//
// Why server-side apply, and not a client-side three-way merge with the
// last applied object in an annotation (wrangler's apply): the apiserver
// already tracks which manager set which field, so rein keeps no copy of
// the object (wrangler's gzip+base64 annotation is its largest CPU cost,
// fleet#1081), a field another controller or a user owns is left alone,
// and removal of a field the set stopped declaring is exact.
//
// # Owners
//
// Deleting the owner deletes its children: by the garbage collector for
// children with an owner reference (kube-controller-manager), and by
// Set.Apply with no desired object (Set.Delete), which a generating
// handler calls when its owner is removed, for all of them, including
// children in other namespaces or cluster-scoped children of a namespaced
// owner, which cannot carry an owner reference and are found by label.
//
// # Fencing
//
// A Set writes through the factory's clients: its writes pass the
// leadership fence and carry the fence's deadline like every handler
// write. Server-side fencing does not cover them (they name their own,
// stable field manager; see pkg/leader).
package apply
