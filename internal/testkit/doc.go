// Package testkit holds the helpers that the tests of several packages
// under pkg/ share: polling for state with a deadline, receiving from a
// channel with a deadline, a buffer that goroutines may log into, and a
// control plane started by the first test that needs it.
//
// It is for tests only. It imports no package of pkg/ but pkg/testenv, so
// that the in-package tests of any other package may use it; helpers that
// need pkg/framework live in internal/testkit/factorytest.
package testkit
