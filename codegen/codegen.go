package codegen

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"
)

// Options says what to generate from which API packages.
type Options struct {
	// Dir is the root of the Go module that holds the API packages (the
	// folder of its go.mod). Empty means the working directory.
	Dir string
	// APIPackages are the group/version packages, as import paths or as
	// "./"-relative paths under Dir, e.g. ./api/vm/v1alpha1.
	APIPackages []string
	// OutputPackage is the import path under which clientset/, listers/,
	// informers/ and controllers/ are written, e.g. example.com/m/pkg/generated.
	// It must lie inside the module at Dir.
	OutputPackage string
	// CRDDir is where the CRD manifests go, relative to Dir; empty writes
	// none.
	CRDDir string
	// Header is put at the top of every generated Go file (a license
	// comment, say), before the "Code generated" line.
	Header string
	// Log receives progress lines; nil discards them.
	Log io.Writer
}

// Run generates, for the API packages of opts: deepcopy functions,
// scheme registration (where the package has none) and list types (where
// missing), the versioned clientset, listers and informers of
// k8s.io/code-generator, rein's typed controllers, and CRD manifests. It
// returns an error naming the package or type at fault; it never panics or
// exits.
func Run(ctx context.Context, opts Options) error {
	g, err := newRun(ctx, opts)
	if err != nil {
		return err
	}
	return g.generate(ctx)
}

type run struct {
	opts      Options
	log       io.Writer
	module    string // module path
	moduleDir string
	outDir    string // folder of OutputPackage
	packages  []*apiPackage
	header    string
}

func newRun(ctx context.Context, opts Options) (*run, error) {
	if len(opts.APIPackages) == 0 {
		return nil, errors.New("codegen: no API packages given")
	}
	if opts.OutputPackage == "" {
		return nil, errors.New("codegen: no output package given (e.g. example.com/m/pkg/generated)")
	}
	r := &run{opts: opts, log: opts.Log}
	if r.log == nil {
		r.log = io.Discard
	}
	dir := opts.Dir
	if dir == "" {
		dir = "."
	}
	var err error
	if r.moduleDir, err = filepath.Abs(dir); err != nil {
		return nil, fmt.Errorf("codegen: %w", err)
	}
	var mod struct{ Path, Dir string }
	if err := goJSON(ctx, r.moduleDir, &mod, "list", "-m", "-json"); err != nil {
		return nil, fmt.Errorf("codegen: %s is not inside a Go module: %w", r.moduleDir, err)
	}
	r.module, r.moduleDir = mod.Path, mod.Dir
	rel, ok := strings.CutPrefix(opts.OutputPackage, r.module)
	if !ok || (rel != "" && !strings.HasPrefix(rel, "/")) {
		return nil, fmt.Errorf("codegen: output package %s is not inside module %s", opts.OutputPackage, r.module)
	}
	r.outDir = filepath.Join(r.moduleDir, filepath.FromSlash(strings.TrimPrefix(rel, "/")))
	r.header = opts.Header
	if r.header != "" && !strings.HasSuffix(r.header, "\n") {
		r.header += "\n"
	}

	var errs []error
	for _, p := range opts.APIPackages {
		importPath := p
		if strings.HasPrefix(p, "./") || strings.HasPrefix(p, "../") {
			importPath = path.Clean(r.module + "/" + strings.TrimPrefix(filepath.ToSlash(p), "./"))
		}
		rel, ok := strings.CutPrefix(importPath, r.module+"/")
		if !ok {
			errs = append(errs, fmt.Errorf("codegen: API package %s is not inside module %s", p, r.module))
			continue
		}
		pkg, err := loadPackage(importPath, filepath.Join(r.moduleDir, filepath.FromSlash(rel)))
		if err != nil {
			errs = append(errs, fmt.Errorf("codegen: %w", err))
			continue
		}
		r.packages = append(r.packages, pkg)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	sort.Slice(r.packages, func(i, j int) bool { return r.packages[i].ImportPath < r.packages[j].ImportPath })
	return r, nil
}

func (r *run) generate(ctx context.Context) error {
	start := time.Now()
	// 0. Generated files of kinds that are gone must not linger.
	if err := pruneGenerated(r.outDir, "clientset", "listers", "informers", "controllers"); err != nil {
		return err
	}
	// 1. What deepcopy-gen must see: scheme registration and list types.
	if err := r.writeRegistration(); err != nil {
		return err
	}
	// 2. k8s.io/code-generator: deepcopy, clientset, listers, informers.
	if err := r.runCodeGenerators(ctx); err != nil {
		return err
	}
	// 3. rein's typed controllers.
	if err := writeControllers(r.packages, filepath.Join(r.outDir, "controllers"), r.opts.OutputPackage+"/controllers", r.header); err != nil {
		return err
	}
	// 4. CRD manifests.
	if r.opts.CRDDir != "" {
		if err := r.writeCRDs(ctx); err != nil {
			return err
		}
	}
	fmt.Fprintf(r.log, "rein-gen: generated %d API packages in %v\n", len(r.packages), time.Since(start).Round(time.Millisecond))
	return nil
}

// writeRegistration writes zz_generated_register.go where a package has no
// AddToScheme, and zz_generated_list_types.go for kinds without a List.
func (r *run) writeRegistration() error {
	for _, p := range r.packages {
		var lists []*kind
		for _, k := range p.Kinds {
			if !k.HasList {
				lists = append(lists, k)
			}
		}
		if len(lists) > 0 {
			if err := r.writeGo(filepath.Join(p.Dir, "zz_generated_list_types.go"), listTypesTemplate,
				struct {
					Name  string
					Lists []*kind
				}{p.Name, lists}); err != nil {
				return err
			}
		}
		if !p.HasRegister {
			if err := r.writeGo(filepath.Join(p.Dir, "zz_generated_register.go"), registerTemplate, p); err != nil {
				return err
			}
		}
	}
	return nil
}

func (r *run) writeGo(file string, t interface {
	Execute(io.Writer, any) error
	Name() string
}, data any) error {
	out, err := renderWith(r.header, t.Name(), t, data)
	if err != nil {
		return fmt.Errorf("codegen: %s: %w", file, err)
	}
	return writeFile(file, out)
}

// writeFile writes only when the content differs, so that an unchanged
// file keeps its modification time (and build caches stay warm).
func writeFile(file string, content []byte) error {
	if old, err := os.ReadFile(file); err == nil && string(old) == string(content) {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		return fmt.Errorf("codegen: %w", err)
	}
	if err := os.WriteFile(file, content, 0o644); err != nil {
		return fmt.Errorf("codegen: %w", err)
	}
	return nil
}

// pruneGenerated removes the generated Go files (those with a "Code
// generated by ... DO NOT EDIT." line) under the named folders of dir;
// hand-written files there are kept.
func pruneGenerated(dir string, folders ...string) error {
	for _, folder := range folders {
		root := filepath.Join(dir, folder)
		err := filepath.WalkDir(root, func(file string, d os.DirEntry, err error) error {
			if err != nil {
				if os.IsNotExist(err) && file == root {
					return filepath.SkipDir
				}
				return err
			}
			if d.IsDir() || !strings.HasSuffix(file, ".go") {
				return nil
			}
			content, err := os.ReadFile(file)
			if err != nil {
				return err
			}
			if generatedMarker.Match(content) {
				return os.Remove(file)
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("codegen: prune %s: %w", root, err)
		}
	}
	return nil
}

// generatedMarker is the Go convention for generated files.
var generatedMarker = regexp.MustCompile(`(?m)^// Code generated .* DO NOT EDIT\.$`)

// goJSON runs the go command in dir and decodes its JSON output.
func goJSON(ctx context.Context, dir string, into any, args ...string) error {
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = dir
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("go %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return json.Unmarshal(out, into)
}
