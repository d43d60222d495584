// Package rbac turns kubebuilder's +kubebuilder:rbac markers into the
// ClusterRole and Roles controller-gen writes for them, for rein-gen:
//
//   - Scan finds the Go files of a module that hold RBAC markers, as
//     controller-gen's `paths=./...` would load them: every package of the
//     module (not vendor/, testdata/, folders starting with '.' or '_', or
//     nested modules), without tests, with the build constraints of this
//     platform;
//   - Check parses each marker with controller-tools' own definition
//     (sigs.k8s.io/controller-tools/pkg/rbac), so that a mistake is named
//     by file and line before anything is written;
//   - Manifest runs controller-tools' RBAC generator on the parsed files:
//     the same association of markers to the package (markers in a
//     function's doc comment or body do not count, as with controller-gen),
//     the same merging of duplicate and overlapping rules, the same YAML,
//     one ClusterRole for the markers without a namespace and a Role per
//     namespace (and per roleName=).
//
// # Why not controller-gen's loader
//
// controller-gen loads the packages with `go list` and type information it
// does not use for RBAC (a second or more per run); the markers need only
// the syntax of the few files that hold them. The generator is
// controller-tools' own: only the loading differs, and a test compares the
// output with controller-gen's on the same module.
package rbac
