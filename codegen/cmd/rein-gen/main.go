// Command rein-gen generates, for Kubernetes API types written in Go, the
// deepcopy functions, clientset, listers and informers of
// k8s.io/code-generator, rein's typed controllers, and CRD manifests.
//
//	go run github.com/rein-k8s/rein/codegen/cmd/rein-gen \
//	    --output-package example.com/m/pkg/generated --crd-dir config/crd ./api/vm/v1alpha1
//
// or, in a doc.go of the module:
//
//	//go:generate go run github.com/rein-k8s/rein/codegen/cmd/rein-gen --output-package example.com/m/pkg/generated --crd-dir config/crd ./api/vm/v1alpha1
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"

	"github.com/rein-k8s/rein/codegen"
)

func main() {
	fs := flag.NewFlagSet("rein-gen", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: rein-gen --output-package IMPORT/PATH [--crd-dir DIR] [--dir MODULE_DIR] [--header-file FILE] API_PACKAGE...")
		fs.PrintDefaults()
	}
	opts := codegen.Options{Log: os.Stderr}
	fs.StringVar(&opts.Dir, "dir", ".", "root of the Go module holding the API packages")
	fs.StringVar(&opts.OutputPackage, "output-package", "", "import path under which clientset/, listers/, informers/ and controllers/ are written (required)")
	fs.StringVar(&opts.CRDDir, "crd-dir", "", "folder (relative to --dir) for the CRD manifests; empty writes none")
	headerFile := fs.String("header-file", "", "file whose text heads every generated Go file (a license, say)")
	if err := fs.Parse(os.Args[1:]); err != nil {
		os.Exit(2)
	}
	opts.APIPackages = fs.Args()
	if *headerFile != "" {
		header, err := os.ReadFile(*headerFile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "rein-gen:", err)
			os.Exit(2)
		}
		opts.Header = string(header)
	}
	if opts.OutputPackage == "" || len(opts.APIPackages) == 0 {
		fs.Usage()
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := codegen.Run(ctx, opts); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
