// Package testenv starts a real Kubernetes control plane (etcd and
// kube-apiserver) on free loopback ports, for rein's tests and for the demo.
//
// It is built on controller-runtime's envtest process management, which is
// the ecosystem's standard for exactly this job: it picks free ports, makes a
// throw-away certificate authority, provisions client-certificate users and
// installs CRDs, waiting until discovery serves them. testenv adds what rein
// needs on top:
//
//   - the binaries are kube-apiserver and etcd built from Go modules that
//     rein pins (no prebuilt binary is downloaded), found as described below;
//   - a kubeconfig file per user, so that separate processes (replicas of a
//     controller under test) can connect as that user;
//   - extra users with chosen groups and no other rights, so RBAC is tested
//     for real;
//   - an optional audit log of every request, so multi-replica tests can
//     check from the apiserver's own record who wrote when;
//   - component logs in files next to the kubeconfig, named in errors;
//   - InstallWebhooks, which registers the webhook configurations rein-gen
//     writes (and the CRDs' webhook conversion) for a server on this
//     machine: each Service reference becomes a URL on 127.0.0.1 with the
//     server's CA bundle.
//
// Every Env owns its own ports, certificates, data directory and files, so
// several can run in parallel in one test binary.
//
// # Where the binaries come from
//
// Start looks for a folder with kube-apiserver and etcd in this order:
//
//  1. Options.BinDir;
//  2. the environment variable REIN_TESTBIN;
//  3. the environment variable KUBEBUILDER_ASSETS, the layout of
//     setup-envtest: a folder with kube-apiserver, etcd and kubectl, of
//     whatever Kubernetes version it was set up for;
//  4. bin/ at the root of the rein checkout that contains the working
//     directory, where `make testbin` builds them;
//  5. the folder where `go run github.com/rein-k8s/rein/cmd/rein-testbin`
//     builds them by default for the pins of this version of rein:
//     <user cache folder>/rein/testbin/<hash of the pins> (the user cache
//     folder is $XDG_CACHE_HOME or ~/.cache on Linux, ~/Library/Caches on
//     macOS).
//
// The first of 1-3 that is set is used, and if it lacks a binary Start fails
// rather than fall back on binaries of some other version. 4 and 5 are
// searched, the first with both binaries wins. When nothing is found, the
// error names every place looked at and how to get the binaries: outside a
// rein checkout
//
//	go run github.com/rein-k8s/rein/cmd/rein-testbin@vX.Y.Z   # the rein version in go.mod
//
// which builds them into 5 (15-20 minutes the first time on 2 cores) and
// prints that folder; in a checkout `make testbin`; or set KUBEBUILDER_ASSETS.
// docs/testbin.md in the repository has the details.
package testenv
