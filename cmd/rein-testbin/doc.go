// Command rein-testbin builds the kube-apiserver and etcd that rein's
// pkg/testenv runs, from the Go modules this version of rein pins, so that a
// project using rein can run its tests against a real apiserver without a
// rein checkout and without downloading any binary:
//
//	go run github.com/rein-k8s/rein/cmd/rein-testbin@vX.Y.Z   # the rein version in your go.mod
//
// (or, in a module that requires rein, without the @version: then it builds
// the pins of the rein version in go.mod, which are the ones its testenv
// looks for).
//
// It writes the pinned module (go.mod, go.sum and two small main packages)
// into a build folder, runs go build there and prints the folder that holds
// the binaries as the last line of its standard output; progress goes to
// standard error. The default folder is
//
//	<user cache folder>/rein/testbin/<hash of the module and build commands>
//
// (the user cache folder is $XDG_CACHE_HOME or ~/.cache on Linux,
// ~/Library/Caches on macOS), which is where pkg/testenv looks when no other
// place is set, so after one run `go test` finds the binaries by itself. To
// use them from elsewhere:
//
//	export REIN_TESTBIN=$(go run github.com/rein-k8s/rein/cmd/rein-testbin@vX.Y.Z)
//
// A build is skipped when the folder already holds binaries built from the
// same module with the same Go version. The first build compiles
// kube-apiserver and etcd from source: 15-20 minutes on a loaded 2-core
// machine. A build that Go's build cache can serve (another folder, after
// `make testbin`, after the binaries were deleted) takes under a minute,
// mostly linking kube-apiserver.
//
// Flags:
//
//	--dir DIR       build into DIR (the module goes into DIR/module) instead
//	                of the default folder
//	--force         rebuild even when the binaries are up to date
//	--module-only   write the module into DIR/module and print that folder,
//	                without building (to inspect it or to bump a pin)
//
// `make testbin` in a rein checkout runs this command with --dir bin.
package main
