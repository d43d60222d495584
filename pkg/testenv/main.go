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
// error (which says how to get the binaries when they are missing).
func Main(m interface{ Run() int }, opts Options, env **Env) int {
	e, err := Start(opts)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	*env = e
	code := m.Run()
	if err := e.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		if code == 0 {
			code = 1
		}
	}
	return code
}
