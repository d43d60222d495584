// Package codegen is rein-gen as a library: from Kubernetes API types
// written in Go it generates deepcopy functions, scheme registration and
// list types where the API package lacks them, k8s.io/code-generator's
// versioned clientset, listers and informers, rein's typed controllers, and
// CRD manifests (controller-tools as a library); from kubebuilder's
// +kubebuilder:webhook markers and the kinds' Hub/ConvertTo/ConvertFrom
// methods, typed webhook registration helpers, the webhook configurations
// (webhooks.yaml) and the CRDs' webhook conversion stanzas; and from the
// module's +kubebuilder:rbac markers, the ClusterRole and Roles
// controller-gen writes for them (role.yaml, Options.RBACDir).
//
// rein-gen's init and create api, which start an operator project and add
// kinds to it, are package codegen/internal/scaffold (see its
// documentation and docs/guide/09-new-project.md).
//
// Every output folder of a group is named after the group's package name
// (its first label, one more on a collision, or +groupGoName; lower case),
// whatever the API's layout: for a group batch.example.com in kubebuilder's api/v1,
// clientset/versioned/typed/batch/v1, listers/batch/v1,
// informers/externalversions/batch and controllers/batch.
//
// # Algorithm (Run)
//
//  1. Read the API packages' hand-written files (syntax only; files with
//     rein-gen's header are output, never input) into a model: groups,
//     versions, kinds, scopes, plurals, what registration exists.
//  2. Validate everything that syntax can tell, and parse every kubebuilder
//     marker with controller-tools' registry (a +kubebuilder: marker no
//     controller-tools generator knows is a typo in their namespaces,
//     +kubebuilder:validation:Minimun, and a warning elsewhere,
//     +kubebuilder:docs-gen:collapse); decide each group's Go name;
//     resolve each webhook marker to its kind and each convertible kind to
//     its hub and spokes (webhooks.go); with an RBAC folder, find and parse
//     the module's RBAC markers (rbac.go).
//     Any mistake ends the run here, reported with file and line (relative
//     to the module's root), in milliseconds; nothing is written.
//  3. If a record of an identical earlier run matches (see docs/design.md,
//     "Reruns") and its output is intact, stop: up to date.
//  4. Generate the CRDs in memory (this type-checks what the markers
//     describe), with the conversion stanza of convertible kinds.
//  5. Load the API packages once and run code-generator's deepcopy,
//     client, lister and informer generators in process over that load,
//     with the tags of step 1's model added in memory; render registration,
//     list types, rein's controllers, the webhook helpers, webhooks.yaml
//     and role.yaml. All in memory.
//  6. Make the tree match: write changed files, remove owned files the API
//     no longer produces and folders left empty. Every change is recorded.
//  7. Type-check the API and generated packages in process; on a failure,
//     undo step 6. A first run in a new module runs `go mod tidy` once.
//
// # Limits
//
// Run serialises with other Runs of the process while code-generator runs,
// because klog's exit function and output are process-wide: they are
// redirected for that time (klog's Fatal becomes an error) and klog is left
// logging to standard error after. The output depends on the hand-written
// files of the API packages, the versions in go.mod, and, for client-gen's
// expansion interfaces, on hand-written <kind>_expansion.go files in the
// clientset's folders, which code-generator honours.
package codegen
