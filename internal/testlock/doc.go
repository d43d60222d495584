// Package testlock serialises tests of different packages that need the
// same machine-wide resource, such as the default metrics and probe ports
// (127.0.0.1:8080 and :8081) that the README's replica and pkg/start's
// default-address test bind: `go test ./...` runs packages in parallel
// processes, which no in-process lock can order.
//
// Lock takes an advisory file lock (flock) in the temporary folder and
// holds it until the test ends; a crashed test's lock goes with its
// process.
package testlock
