// Package scaffold writes a new operator project that runs on rein, and
// adds kinds to it: rein-gen's init and create api commands.
//
// Init writes, into an empty folder or an existing Go module, the files
// every project has: go.mod (rein required, rein-gen and rein-testbin as
// tools), main.go (flags, configuration, webhooks, pkg/start), setup.go
// (the wiring of every kind), a Makefile, a Dockerfile, a README and
// deploy/ (a kustomize base: namespace, service account, a Deployment of
// three replicas, a PodDisruptionBudget, the metrics Service, and an
// opt-in kustomize component with the fencing policy). CreateAPI adds a kind: its API
// types with kubebuilder's markers, a handler on the handler ctx, a unit
// test on pkg/generic/fake, an integration test on pkg/testenv, and,
// when asked, webhook markers and functions and a conversion to the
// kind's first version; then it runs the project's `make generate`.
//
// # Algorithm
//
// A project is described by its state file, .rein-scaffold.json: module,
// domain, name, the kinds added, and the SHA-256 of every file this
// package wrote, as it wrote it. Every command computes the new state,
// renders every file of the project from it (a pure function of the
// state), and then, file by file:
//
//   - a file rendered as it was last written is left alone, whatever the
//     user did to it since (deleted, changed, or not);
//   - a new file is written where none exists, and recorded;
//   - a file whose rendering changed (setup.go when a kind is added) is
//     rewritten when it still is what this package last wrote, and
//     skipped otherwise, with the lines the new rendering adds printed;
//   - a file that exists but was not written by this package (an existing
//     module's main.go) is never touched: it is reported with the lines
//     to add when they differ.
//
// So a command run twice is a no-op the second time, and it says so;
// nothing the user changed is ever overwritten. go.mod is not rendered:
// Init creates it, or adds the requirement and the tool directives with
// `go mod edit`, and runs `go mod tidy`.
//
// # Limits
//
// The kind's first version is its storage version and the hub of its
// conversions; a later version of a kind needs --conversion and gets no
// handler of its own (the controller works in the hub). Webhooks are
// scaffolded on the first version only: requests in other versions reach
// them converted. The scope of a kind cannot change once added. Removing
// a kind is done by hand (files and state entry).
package scaffold
