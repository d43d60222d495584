// Package testenv starts a real Kubernetes control plane (etcd and
// kube-apiserver) on free loopback ports, for rein's tests and for the demo.
//
// It runs etcd and kube-apiserver itself, on free ports with a throw-away
// certificate authority and client-certificate users, the way
// controller-runtime's envtest does (whose CRD installation it uses), but
// owns their whole life, so that a test binary never leaves them behind:
// they run in process groups of their own that Stop ends with SIGTERM and,
// after Options.StopTimeout, SIGKILL; on Linux they die with the test
// binary however it dies (the parent-death signal); and Stop removes the
// folder of their data, certificates and logs in every case. What testenv
// adds:
//
//   - the binaries are kube-apiserver and etcd built from Go modules that
//     rein pins (no prebuilt binary is downloaded), found as described below;
//   - a kubeconfig file per user, so that separate processes (replicas of a
//     controller under test) can connect as that user;
//   - extra users with chosen groups and no other rights, so RBAC is tested
//     for real;
//   - an optional audit log of every request, so multi-replica tests can
//     check from the apiserver's own record who wrote when;
//   - component logs in files next to the kubeconfig; an error of Start
//     quotes the end of the failing component's log;
//   - InstallWebhooks, which registers the webhook configurations rein-gen
//     writes (and the CRDs' webhook conversion) for a server on this
//     machine: each Service reference becomes a URL on 127.0.0.1 with the
//     server's CA bundle.
//
// Every Env owns its own ports, certificates, data directory and files, so
// several can run in parallel in one test binary.
//
// # What a test leaves open
//
// kube-apiserver does not stop while a request it serves is open, and a
// watch is open until its client ends it. Env tracks the requests made with
// the configurations it hands out (User.Config, Env.Config, clientsets made
// from them); Stop ends those still open before it stops the apiserver, and
// names them in a *ForcedStopError:
//
//	still open at stop: WATCH /api/v1/namespaces/default/configmaps?watch=true (user admin, open 2.5s)
//
// which points at a test that returned with a Watch or an informer whose
// context never ends. Main (and Finish) reports such a stop on stderr as a
// warning and keeps the tests' result: see Finish for why.
//
// # Where the binaries come from
//
// Start looks for a folder with kube-apiserver and etcd in this order:
//
//  1. Options.BinDir;
//  2. the environment variable REIN_TESTBIN;
//  3. the environment variable KUBEBUILDER_ASSETS, the layout of
//     setup-envtest: a folder with kube-apiserver, etcd and kubectl, of
//     whatever Kubernetes version it was set up for (1.24 or later: Start
//     passes flags of kube-apiserver 1.24 and etcd 3.5);
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
