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
//
// Two more commands start a new operator project and add kinds to it, as
// kubebuilder's do (docs/guide/09-new-project.md):
//
//	rein-gen init --module example.com/guestbook [--domain example.com] [--name guestbook] [--dir DIR]
//	rein-gen create api --group webapp --version v1 --kind Guestbook [--cluster-scoped] [--webhook validating,defaulting] [--conversion] [--dir DIR]
//
// init writes go.mod (rein-gen and rein-testbin as tools), main.go,
// setup.go, a Makefile, a Dockerfile, a README and deploy/ into an empty
// folder or an existing module; create api writes a kind's API types,
// handler, unit and integration tests, webhook functions and conversion,
// and runs make generate. Neither overwrites a file the user changed: each
// says what it skipped, and a second run of the same command does nothing.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"

	"github.com/rein-k8s/rein/codegen"
	"github.com/rein-k8s/rein/codegen/internal/scaffold"
)

func main() {
	if len(os.Args) > 1 && (os.Args[1] == "init" || os.Args[1] == "create") {
		os.Exit(scaffoldMain(os.Args[1:]))
	}
	fs := flag.NewFlagSet("rein-gen", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: rein-gen --output-package IMPORT/PATH [--crd-dir DIR] [--webhook-dir DIR] [--webhook-service NS/NAME] [--rbac-dir DIR] [--rbac-role-name NAME] [--dir DIR] [--header-file FILE] [--no-tidy] API_PACKAGE...")
		fmt.Fprintln(fs.Output(), "API_PACKAGE: ./api/fleet/v1, an import path, or ./api/... for every package below api with a +groupName marker")
		fmt.Fprintln(fs.Output(), "A new project: rein-gen init -h; a kind in it: rein-gen create api -h")
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

// scaffoldMain runs init and create api; it returns the exit status.
func scaffoldMain(args []string) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	var err error
	switch {
	case args[0] == "init":
		fs := flag.NewFlagSet("rein-gen init", flag.ContinueOnError)
		fs.Usage = func() {
			fmt.Fprintln(fs.Output(), "usage: rein-gen init --module IMPORT/PATH [--domain DOMAIN] [--name NAME] [--dir DIR] [--rein-version vX.Y.Z | --rein-replace DIR]")
			fmt.Fprintln(fs.Output(), "Writes a new operator project into DIR (empty, or an existing Go module); then add kinds with rein-gen create api.")
			fs.PrintDefaults()
		}
		o := scaffold.InitOptions{Log: os.Stderr}
		fs.StringVar(&o.Dir, "dir", ".", "the project's folder: empty, or the root of a Go module")
		fs.StringVar(&o.Module, "module", "", "the module path, e.g. example.com/guestbook (kubebuilder's --repo); in an existing module, its own")
		fs.StringVar(&o.Domain, "domain", "", "the domain of the API groups (<group>.<domain>); default: the module path's first element, when it has a dot")
		fs.StringVar(&o.Name, "name", "", "names the binary, the Lease, the Deployment and the namespace <name>-system; default: the module path's last element")
		fs.StringVar(&o.ReinVersion, "rein-version", "", "the rein version go.mod requires (default: the version this rein-gen was built from)")
		fs.StringVar(&o.ReinReplace, "rein-replace", "", "a local rein checkout that go.mod replaces rein with")
		if err := fs.Parse(args[1:]); err != nil {
			return 2
		}
		if fs.NArg() > 0 {
			fmt.Fprintf(os.Stderr, "rein-gen init: unexpected arguments %q: the folder is --dir\n", fs.Args())
			return 2
		}
		err = scaffold.Init(ctx, o)
	case len(args) > 1 && args[1] == "api":
		fs := flag.NewFlagSet("rein-gen create api", flag.ContinueOnError)
		fs.Usage = func() {
			fmt.Fprintln(fs.Output(), "usage: rein-gen create api --group GROUP --version VERSION --kind KIND [--cluster-scoped] [--webhook validating,defaulting] [--conversion] [--generate=false] [--dir DIR]")
			fmt.Fprintln(fs.Output(), "Adds a kind, a version of one, or webhooks to one, to the project rein-gen init wrote; then runs make generate.")
			fs.PrintDefaults()
		}
		o := scaffold.APIOptions{Log: os.Stderr}
		fs.StringVar(&o.Dir, "dir", ".", "the project's folder (where .rein-scaffold.json is)")
		fs.StringVar(&o.Group, "group", "", "the API group's first label, e.g. webapp (the group is webapp.<domain>)")
		fs.StringVar(&o.Version, "version", "", "the API version, e.g. v1 or v1alpha1")
		fs.StringVar(&o.Kind, "kind", "", "the kind, CamelCase, e.g. Guestbook")
		fs.BoolVar(&o.ClusterScoped, "cluster-scoped", false, "a cluster-scoped kind (default: namespaced)")
		webhooks := fs.String("webhook", "", "admission webhooks to scaffold: validating, defaulting, or validating,defaulting")
		fs.BoolVar(&o.Conversion, "conversion", false, "convertible between versions through the kind's first version (the hub); needed for a second version")
		fs.BoolVar(&o.Generate, "generate", true, "run make generate after writing the files")
		if err := fs.Parse(args[2:]); err != nil {
			return 2
		}
		if fs.NArg() > 0 {
			fmt.Fprintf(os.Stderr, "rein-gen create api: unexpected arguments %q\n", fs.Args())
			return 2
		}
		if *webhooks != "" {
			o.Webhooks = strings.Split(*webhooks, ",")
		}
		var missing []string
		for _, f := range []struct{ name, v string }{{"--group", o.Group}, {"--version", o.Version}, {"--kind", o.Kind}} {
			if f.v == "" {
				missing = append(missing, f.name)
			}
		}
		if len(missing) > 0 {
			fmt.Fprintf(os.Stderr, "rein-gen create api: %s required, e.g. --group webapp --version v1 --kind Guestbook\n", strings.Join(missing, ", "))
			return 2
		}
		err = scaffold.CreateAPI(ctx, o)
	default:
		fmt.Fprintln(os.Stderr, "usage: rein-gen create api --group GROUP --version VERSION --kind KIND [...] (create api -h lists the flags)")
		return 2
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "rein-gen:", err)
		return 1
	}
	return 0
}
