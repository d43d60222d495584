// Package testkit holds the helpers that the tests of several packages
// under pkg/ share, so that each package's tests do not carry a copy:
// Eventually (poll state with a deadline) and Receive (a channel with a
// deadline), SyncBuffer and Logger (a log that goroutines write and a
// failing test shows), LazyEnv (a control plane started by the first test
// that needs it, stopped after the package's tests), Admin and NewNamespace
// (an administrator's clientset, a namespace of the test's own), and
// ReleaseAtEnd (a leader's term released when the test ends).
//
// It is for tests only. It imports no package of pkg/ but pkg/testenv, so
// that the in-package tests of any other package may use it; the helpers
// that need pkg/framework live in internal/testkit/factorytest. Its
// subpackages audit (the apiserver's audit log of testenv.Options.Audit)
// and leasehistory (a Lease's holder changes, from a watch) serve the
// multi-replica tests and the benchmarks; otlptest (an OTLP trace
// receiver in the process) the tracing tests and benchmark; rbactest
// (printed RBAC read, bound, and compared rule by rule with what a
// replica's /readyz says it lacks) the RBAC tests of the sample and of
// scaffolded projects.
package testkit
