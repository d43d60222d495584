// Package related re-runs a controller's handlers when other objects
// change: a change or delete of a source object (a child, a referenced
// Secret) enqueues the keys a Resolver returns on the target controller.
//
// Sources are shared informers (a factory's caches, which every replica
// keeps warm); resolvers read caches, never the apiserver, so a related
// watch costs no request. Built-in resolvers find the owner of a child by
// its controller owner reference or, for children that cannot carry one
// (another namespace, a cluster-scoped child of a namespaced owner), by the
// owner annotation pkg/apply puts on them (OwnerOf), and find the objects
// that reference a source by name through a cache index of the target
// (Referencing).
//
// Keys enqueued go through the target's queue like any other: duplicates
// collapse, and on a standby they wait for its term.
package related
