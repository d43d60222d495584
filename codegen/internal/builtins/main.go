// Command builtins writes rein's typed controllers of built-in kinds into
// pkg/controllers. `make generate` runs it from the repository's root.
package main

import (
	"fmt"
	"os"

	"github.com/rein-k8s/rein/codegen"
)

func main() {
	if err := codegen.WriteBuiltinControllers("pkg/controllers", "github.com/rein-k8s/rein/pkg/controllers"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
