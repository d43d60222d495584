package engine

import (
	"github.com/rein-k8s/rein/internal/rbacneeds"
)

// What a factory needs of the apiserver's RBAC, recorded as it is set up
// (a cache made, a controller made, a set or handler registered), so that
// pkg/start can print it and check it before a replica campaigns.
//
// What is known when the program registers its handlers, and so what is
// recorded:
//
//   - a cache of a kind, in any form (typed, metadata-only, unstructured
//     all list and watch the same resource): list and watch, in the
//     namespaces the cache covers (a Role each) or cluster-wide;
//   - a controller of a kind (handlers registered, or keys queued to it):
//     get (the engine reads an object live before it writes its
//     finalizers), and the writes of its handler API on the handler's own
//     object: update and patch (patch only for metadata-only objects,
//     which have no body to update);
//   - status handlers (generic.RegisterStatusHandler and the generating
//     handler): update and patch of <plural>/status;
//   - OnRemove handlers: update of <plural>/finalizers (the engine's
//     finalizer writes are patches of the object, authorized by the rule
//     above; clusters that enforce owner references, OpenShift's, check
//     the finalizers subresource too);
//   - apply sets (pkg/apply): create, patch and delete of each kind, on
//     top of the cache's list and watch.
//
// What is not known: the calls a handler makes with a typed client's
// Create, Delete, DeleteCollection, or UpdateStatus outside a status
// helper, and writes of kinds no handler or set is registered for. A
// controller's client can write anything of its kind, but granting every
// verb to every kind a program touches would turn the generated roles into
// the wide ones they replace; such needs are declared with
// start.Options.RBACRules.

// RBAC is what the factory has needed so far.
func (f *Ops) RBAC() *rbacneeds.Set { return &f.rbac }

// NeedRBAC records verbs on res (or its subresource sub, "" for the
// object itself) in the namespaces the factory caches res in.
func (f *Ops) NeedRBAC(why string, res Resource, sub string, verbs ...string) {
	resource := res.Plural
	if sub != "" {
		resource += "/" + sub
	}
	for _, ns := range f.namespacesOf(res) {
		f.rbac.Add(why, rbacneeds.Rule{Namespace: ns, Group: res.GVK.Group, Resource: resource}, verbs...)
	}
}

// namespacesOf is where res's objects are cached, and so where the
// factory reads and writes them: {""} for all (and for cluster-scoped
// kinds).
func (f *Ops) namespacesOf(res Resource) []string {
	if f.caches == nil || !res.Namespaced {
		return []string{""}
	}
	return f.caches.namespacesOf(res)
}

// NeedCacheRBAC records the list and watch of res's cache, for a cache
// that will be made later (on its first read).
func (f *Ops) NeedCacheRBAC(res Resource) { f.needCache(res) }

func (f *Ops) needCache(res Resource) {
	f.NeedRBAC("the cache of "+res.String(), res, "", "list", "watch")
}

func (f *Ops) needController(res Resource) {
	f.needCache(res)
	writes := []string{"update", "patch"}
	if res.Form == Metadata {
		writes = writes[1:]
	}
	f.NeedRBAC("the controller of "+res.String()+": a live read before a finalizer write, its handlers' writes of their object", res, "", append([]string{"get"}, writes...)...)
}
