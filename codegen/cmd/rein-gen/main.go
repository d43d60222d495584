// Command rein-gen generates, for Kubernetes API types written in Go, the
// deepcopy functions, clientset, listers and informers of
// k8s.io/code-generator, rein's typed controllers, CRD manifests, and, from
// kubebuilder's webhook markers and the API's Hub/ConvertTo/ConvertFrom
// methods, typed webhook registration helpers, the webhook configurations
// and the CRDs' conversion stanzas, and from the module's +kubebuilder:rbac
// markers the ClusterRole controller-gen would write (--rbac-dir). Add
// it to your module as a tool and run it with go tool:
//
//	go get -tool github.com/rein-k8s/rein/codegen/cmd/rein-gen@latest
//	go tool rein-gen --output-package example.com/m/generated --crd-dir config/crd --rbac-dir config/rbac ./api/...
//
// or from a file of the module:
//
//	//go:generate go tool rein-gen --output-package example.com/m/generated --crd-dir config/crd ./api/...
//
// Rerun it after every change of the API: the output depends on the API
// alone, stale output is removed, and a rerun on an unchanged API returns
// at once. Exit status: 0 on success (a module that type-checks), 1 when the
// API or the generation fails (the message names file, line and fix; the
// tree is as it was), 2 for bad flags.
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
		fmt.Fprintln(fs.Output(), "usage: rein-gen --output-package IMPORT/PATH [--crd-dir DIR] [--webhook-dir DIR] [--webhook-service NS/NAME] [--rbac-dir DIR] [--rbac-role-name NAME] [--dir DIR] [--header-file FILE] [--no-tidy] API_PACKAGE...")
		fmt.Fprintln(fs.Output(), "API_PACKAGE: ./api/fleet/v1, an import path, or ./api/... for every package below api with a +groupName marker")
		fs.PrintDefaults()
	}
	opts := codegen.Options{Log: os.Stderr}
	fs.StringVar(&opts.Dir, "dir", ".", "a folder of the Go module holding the API packages; relative API packages and --crd-dir, --webhook-dir and --rbac-dir are resolved against it")
	fs.StringVar(&opts.OutputPackage, "output-package", "", "import path under which clientset/, listers/, informers/ and controllers/ are written (required)")
	fs.StringVar(&opts.CRDDir, "crd-dir", "", "folder for the CRD manifests; empty writes none (they are still generated, as a check)")
	fs.StringVar(&opts.WebhookDir, "webhook-dir", "", "folder for webhooks.yaml, the webhook configurations of the API's +kubebuilder:webhook markers; empty writes none")
	fs.StringVar(&opts.WebhookService, "webhook-service", "", "the Service (NAMESPACE/NAME) the webhook configurations and the CRDs' conversion stanzas call when a marker names none (default system/webhook-service)")
	fs.StringVar(&opts.RBACDir, "rbac-dir", "", "folder for role.yaml, the ClusterRole (and Roles) of the module's +kubebuilder:rbac markers, as controller-gen writes it; empty reads no RBAC markers")
	fs.StringVar(&opts.RBACRoleName, "rbac-role-name", "manager-role", "name of the ClusterRole (and of the Roles of namespaced markers) where a marker gives no roleName=")
	fs.BoolVar(&opts.NoTidy, "no-tidy", false, "never run `go mod tidy`; fail instead when the module lacks what the generated code imports")
	headerFile := fs.String("header-file", "", "file whose text heads every generated Go file (a license, say)")
	if err := fs.Parse(os.Args[1:]); err != nil {
		os.Exit(2)
	}
	opts.APIPackages = fs.Args()
	var problems []string
	if opts.OutputPackage == "" {
		problems = append(problems, "--output-package is required, e.g. --output-package example.com/m/generated")
	}
	if len(opts.APIPackages) == 0 {
		problems = append(problems, "no API packages given: name them after the flags, e.g. ./api/...")
	}
	if *headerFile != "" {
		header, err := os.ReadFile(*headerFile)
		if err != nil {
			problems = append(problems, fmt.Sprintf("--header-file: %v", err))
		}
		opts.Header = string(header)
	}
	if len(problems) > 0 {
		for _, p := range problems {
			fmt.Fprintln(os.Stderr, "rein-gen:", p)
		}
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
