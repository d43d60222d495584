package testenv

import (
	"fmt"
	"os"
)

// Main runs a package's tests against one control plane they share: it
// starts the control plane with opts, stores it in *env, runs the tests and
// stops it. Call it from TestMain:
//
//	var env *testenv.Env
//
//	func TestMain(m *testing.M) { os.Exit(testenv.Main(m, testenv.Options{}, &env)) }
//
// A control plane that does not start fails the whole package with its
// error (which says how to get the binaries when they are missing). After
// the tests, Main returns their result as Finish does.
func Main(m interface{ Run() int }, opts Options, env **Env) int {
	e, err := Start(opts)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	*env = e
	return Finish(e, m.Run())
}

// Finish stops e after a package's tests returned code (m.Run()'s result)
// and returns the code the package exits with, for a TestMain that starts
// its control plane itself.
//
// A stop that had to force things (a *ForcedStopError: requests left
// open, a process killed) does not fail a package whose tests passed: it
// is written to stderr as a warning naming what was open, and code is
// returned. The control plane is gone and nothing is left on the machine;
// every test passed its own checks; and the leak is seen once, after the
// last test, tied to none: a failure would be a FAIL with every test
// PASS, which says less than the warning, whose requests point at the
// test that left them.
// Any other stop error (a process that would not die, a folder that could
// not be removed) fails the package, since something is left behind. A
// failing code is never turned into a pass.
func Finish(e *Env, code int) int {
	err := e.Stop()
	if err == nil {
		return code
	}
	// Only a ForcedStopError by itself is a warning: joined with other
	// errors it is part of a failure.
	if _, forced := err.(*ForcedStopError); forced {
		fmt.Fprintln(os.Stderr, "WARNING:", err)
		return code
	}
	fmt.Fprintln(os.Stderr, err)
	if code == 0 {
		code = 1
	}
	return code
}
