// Package testenv starts a real Kubernetes control plane (etcd and
// kube-apiserver) on free loopback ports, for rein's tests and for the demo.
//
// It is built on controller-runtime's envtest process management, which is
// the ecosystem's standard for exactly this job: it picks free ports, makes a
// throw-away certificate authority, provisions client-certificate users and
// installs CRDs, waiting until discovery serves them. testenv adds what rein
// needs on top:
//
//   - the binaries come from the repository's bin/ folder, built from pinned
//     Go modules by `make testbin` (nothing is downloaded, and the
//     KUBEBUILDER_ASSETS environment variable cannot point a test at some
//     other version by accident);
//   - a kubeconfig file per user, so that separate processes (replicas of a
//     controller under test) can connect as that user;
//   - extra users with chosen groups and no other rights, so RBAC is tested
//     for real;
//   - an optional audit log of every request, so multi-replica tests can
//     check from the apiserver's own record who wrote when;
//   - component logs in files next to the kubeconfig, named in errors.
//
// Every Env owns its own ports, certificates, data directory and files, so
// several can run in parallel in one test binary.
package testenv
