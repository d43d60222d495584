package rbac

import (
	"bytes"
	"errors"
	"fmt"
	"go/ast"
	"go/build"
	"go/parser"
	"go/token"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"sync"

	"golang.org/x/tools/go/packages"
	"sigs.k8s.io/controller-tools/pkg/genall"
	"sigs.k8s.io/controller-tools/pkg/loader"
	"sigs.k8s.io/controller-tools/pkg/markers"
	ctrbac "sigs.k8s.io/controller-tools/pkg/rbac"
)

// MarkerPrefix begins every RBAC marker.
const MarkerPrefix = "+kubebuilder:rbac:"

// DefaultRoleName is the name controller-gen's kubebuilder scaffolding
// gives the ClusterRole (rbac:roleName=manager-role).
const DefaultRoleName = "manager-role"

// FileName is the manifest's name, as controller-gen writes it.
const FileName = "role.yaml"

// Source is one Go file of the module that holds an RBAC marker.
type Source struct {
	// Path is the file's path, absolute.
	Path string
	// Src is its content.
	Src []byte
}

// Scan returns the Go files below moduleDir that controller-gen's
// `paths=./...` loads and that hold an RBAC marker, in path order: the
// files go list puts in the packages of the module and, as controller-gen
// also loads them, of every module nested below it (a folder with a
// go.mod, wherever it is). skip, if not nil, leaves out a folder and
// everything below it (rein-gen's output, say).
func Scan(moduleDir string, skip func(dir string) bool) ([]Source, error) {
	skipped := func(path string) bool { return skip != nil && skip(path) }
	// The modules, as controller-gen's loader finds them: every go.mod.
	modules := []string{moduleDir}
	err := filepath.WalkDir(moduleDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			return nil
		}
		if path != moduleDir && (d.Name() == ".git" || skipped(path)) {
			return filepath.SkipDir
		}
		if path != moduleDir {
			if _, err := os.Stat(filepath.Join(path, "go.mod")); err == nil {
				modules = append(modules, path)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("rbac: find the modules below %s: %w", moduleDir, err)
	}
	var out []Source
	marker := []byte(MarkerPrefix)
	for _, module := range modules {
		// The packages of one module, as go list ./... finds them.
		err := filepath.WalkDir(module, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			name := d.Name()
			if d.IsDir() {
				if path == module {
					return nil
				}
				if strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_") || name == "testdata" || name == "vendor" || skipped(path) {
					return filepath.SkipDir
				}
				if _, err := os.Stat(filepath.Join(path, "go.mod")); err == nil {
					return filepath.SkipDir // a module of its own, walked as such
				}
				return nil
			}
			if !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") || !d.Type().IsRegular() {
				return nil
			}
			src, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			if !bytes.Contains(src, marker) {
				return nil
			}
			if ok, err := build.Default.MatchFile(filepath.Dir(path), name); err != nil || !ok {
				return nil // not built on this platform: go list leaves it out
			}
			out = append(out, Source{Path: path, Src: src})
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("rbac: find the markers below %s: %w", module, err)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out, nil
}

// Parsed is the syntax of the Sources, ready for Manifest.
type Parsed struct {
	fset  *token.FileSet
	files []*ast.File
}

// Parse parses the sources; display names a file in errors and positions
// (a path relative to the module, say). Syntax errors name file and line.
func Parse(sources []Source, display func(path string) string) (*Parsed, error) {
	p := &Parsed{fset: token.NewFileSet()}
	var errs []error
	for _, s := range sources {
		f, err := parser.ParseFile(p.fset, display(s.Path), s.Src, parser.AllErrors|parser.ParseComments)
		if err != nil {
			errs = append(errs, fmt.Errorf("%w (the file holds RBAC markers, which cannot be read until it parses)", err))
			continue
		}
		p.files = append(p.files, f)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return p, nil
}

// Check parses every RBAC marker line of the files (wherever it is, even
// where controller-gen would not read it) with controller-tools'
// definition and returns the mistakes, each with file and line.
func (p *Parsed) Check() []error {
	var errs []error
	for _, f := range p.files {
		for _, cg := range f.Comments {
			for _, c := range cg.List {
				if !strings.HasPrefix(c.Text, "//") {
					continue
				}
				text := strings.TrimSpace(c.Text[2:])
				if !strings.HasPrefix(text, MarkerPrefix) {
					continue
				}
				if _, err := ctrbac.RuleDefinition.Parse(text); err != nil {
					errs = append(errs, fmt.Errorf("%s: marker %s: %v", p.fset.Position(c.Pos()), text, err))
				}
			}
		}
	}
	return errs
}

// Ignored returns a line for each RBAC marker controller-gen does not read,
// which the manifest therefore leaves out: one in a doc comment (of a
// func, type, field, var or const) or inside a declaration. Each names
// file, line and the fix.
func (p *Parsed) Ignored() []string {
	var out []string
	for _, f := range p.files {
		registry := &markers.Registry{}
		if err := (ctrbac.Generator{}).RegisterMarkers(registry); err != nil {
			return nil
		}
		root := &loader.Package{Package: &packages.Package{ID: "file", Fset: p.fset, Syntax: []*ast.File{f}}}
		read, err := markers.PackageMarkers(&markers.Collector{Registry: registry}, root)
		if err != nil {
			return nil // Check reports the marker that does not parse
		}
		// The rules controller-gen read, to be matched with the lines.
		left := read[ctrbac.RuleDefinition.Name]
		for _, cg := range f.Comments {
			for _, c := range cg.List {
				text := strings.TrimSpace(strings.TrimPrefix(c.Text, "//"))
				if !strings.HasPrefix(c.Text, "//") || !strings.HasPrefix(text, MarkerPrefix) {
					continue
				}
				v, err := ctrbac.RuleDefinition.Parse(text)
				if err != nil {
					continue
				}
				i := slices.IndexFunc(left, func(l any) bool { return reflect.DeepEqual(l, v) })
				if i >= 0 {
					left = slices.Delete(left, i, i+1)
					continue
				}
				out = append(out, fmt.Sprintf("%s: marker %s is in a doc comment or inside a declaration, where controller-gen does not read RBAC markers: it is left out of the role; put it in a comment of its own, with a blank line between it and the declaration's doc comment",
					p.fset.Position(c.Pos()), text))
			}
		}
	}
	return out
}

// Manifest returns what controller-gen's RBAC generator (rbac:roleName=
// roleName) writes for the files, with header (YAML comment lines, or "")
// on top; nil when no marker counts.
func (p *Parsed) Manifest(roleName, header string) ([]byte, error) {
	if roleName == "" {
		roleName = DefaultRoleName
	}
	// One root per folder, as go list would make packages: the generator
	// merges the rules of all roots, so only the files matter.
	byDir := map[string][]*ast.File{}
	for _, f := range p.files {
		dir := filepath.Dir(p.fset.Position(f.Package).Filename)
		byDir[dir] = append(byDir[dir], f)
	}
	dirs := make([]string, 0, len(byDir))
	for dir := range byDir {
		dirs = append(dirs, dir)
	}
	sort.Strings(dirs)
	var roots []*loader.Package
	for _, dir := range dirs {
		// Syntax is set, so the loader never reads the files again.
		roots = append(roots, &loader.Package{Package: &packages.Package{ID: dir, PkgPath: dir, Fset: p.fset, Syntax: byDir[dir]}})
	}
	registry := &markers.Registry{}
	if err := (ctrbac.Generator{}).RegisterMarkers(registry); err != nil {
		return nil, fmt.Errorf("rbac: controller-tools' markers: %w", err)
	}
	out := &memoryOutput{}
	ctx := &genall.GenerationContext{Collector: &markers.Collector{Registry: registry}, Roots: roots, OutputRule: out}
	if err := (ctrbac.Generator{RoleName: roleName}).Generate(ctx); err != nil {
		return nil, fmt.Errorf("rbac: %w", err)
	}
	var errs []error
	for _, root := range roots {
		for _, e := range root.Errors {
			errs = append(errs, errors.New(e.Error()))
		}
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("rbac: %w", errors.Join(errs...))
	}
	if out.buf == nil {
		return nil, nil
	}
	return append([]byte(header), out.buf.Bytes()...), nil
}

// memoryOutput is a genall.OutputRule that keeps the one file the RBAC
// generator writes.
type memoryOutput struct {
	mu  sync.Mutex
	buf *bytes.Buffer
}

func (m *memoryOutput) Open(_ *loader.Package, _ string) (io.WriteCloser, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.buf = &bytes.Buffer{}
	return nopCloser{m.buf}, nil
}

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }
