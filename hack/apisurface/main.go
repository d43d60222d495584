// Command apisurface counts the exported names of rein's hand-written
// packages under pkg/: top-level functions, types, variables and constants,
// exported methods (of types and of interfaces) and exported struct fields.
// Generated files ("Code generated ... DO NOT EDIT.") and tests are left
// out, as are packages that hold only generated code (pkg/controllers).
// An alias of a type of the module's internal packages (type Factory =
// engine.Factory) counts as the alias and every exported method and field
// of the aliased type, which a user reaches through it.
//
// It also lists every top-level name exported by more than one package, so
// that a reviewer sees at once where one meaning may be exported twice.
// Names in allowSameName differ in meaning by package (each package's own
// Options, New, Config) and are not reported.
//
//	go run ./hack/apisurface [-max N] [-v] [dir]
//
// With -max, it exits 1 when the count is above N.
package main

import (
	"flag"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// allowSameName lists top-level names that several packages export, each
// with its own meaning: a package's constructor, its options and its doc'd
// configuration. Anything else exported twice is reported.
var allowSameName = map[string]bool{
	"New": true, "Options": true, "Config": true, "Metrics": true,
	"NewMetrics": true, "Register": true,
	// fake.Env is an in-memory store for handler unit tests; testenv.Env a
	// real control plane.
	"Env": true,
}

func main() {
	max := flag.Int("max", 0, "exit 1 when the count is above this (0: no limit)")
	verbose := flag.Bool("v", false, "list every name counted")
	flag.Parse()
	root := "pkg"
	if flag.NArg() > 0 {
		root = flag.Arg(0)
	}
	perPkg := map[string][]string{}
	topLevel := map[string][]string{} // name → packages
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		fset := token.NewFileSet()
		f, err := parser.ParseFile(fset, path, nil, parser.ParseComments)
		if err != nil {
			return err
		}
		if ast.IsGenerated(f) || f.Name.Name == "main" {
			return nil
		}
		pkg := filepath.Dir(path)
		names := exported(f)
		for _, a := range internalAliases(f) {
			members, err := aliasedMembers(a)
			if err != nil {
				return err
			}
			names = append(names, members...)
		}
		for _, n := range names {
			perPkg[pkg] = append(perPkg[pkg], n)
			if !strings.Contains(n, ".") {
				topLevel[n] = append(topLevel[n], pkg)
			}
		}
		return nil
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "apisurface:", err)
		os.Exit(2)
	}
	pkgs := make([]string, 0, len(perPkg))
	total := 0
	for p, names := range perPkg {
		pkgs = append(pkgs, p)
		total += len(names)
	}
	sort.Strings(pkgs)
	for _, p := range pkgs {
		fmt.Printf("%5d  %s\n", len(perPkg[p]), p)
		if *verbose {
			names := perPkg[p]
			sort.Strings(names)
			for _, n := range names {
				fmt.Printf("         %s\n", n)
			}
		}
	}
	fmt.Printf("%5d  exported names in %s (hand-written, tests excluded)\n", total, root)
	var twice []string
	for n, ps := range topLevel {
		if len(unique(ps)) > 1 && !allowSameName[n] {
			twice = append(twice, fmt.Sprintf("%s: %s", n, strings.Join(unique(ps), ", ")))
		}
	}
	sort.Strings(twice)
	if len(twice) > 0 {
		fmt.Println("exported by more than one package (check that the meanings differ):")
		for _, t := range twice {
			fmt.Println("  ", t)
		}
	}
	if *max > 0 && total > *max {
		fmt.Fprintf(os.Stderr, "apisurface: %d exported names, more than the limit of %d\n", total, *max)
		os.Exit(1)
	}
}

func unique(s []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, x := range s {
		if !seen[x] {
			seen[x] = true
			out = append(out, x)
		}
	}
	return out
}

// exported returns the file's exported names: "Name" for top-level ones,
// "Type.Name" for methods and fields.
func exported(f *ast.File) []string {
	var out []string
	for _, decl := range f.Decls {
		switch d := decl.(type) {
		case *ast.FuncDecl:
			if !d.Name.IsExported() {
				continue
			}
			if d.Recv == nil {
				out = append(out, d.Name.Name)
				continue
			}
			recv := receiverName(d.Recv.List[0].Type)
			if ast.IsExported(recv) {
				out = append(out, recv+"."+d.Name.Name)
			}
		case *ast.GenDecl:
			for _, spec := range d.Specs {
				switch s := spec.(type) {
				case *ast.ValueSpec:
					for _, n := range s.Names {
						if n.IsExported() {
							out = append(out, n.Name)
						}
					}
				case *ast.TypeSpec:
					if !s.Name.IsExported() {
						continue
					}
					out = append(out, s.Name.Name)
					out = append(out, members(s.Name.Name, s.Type)...)
				}
			}
		}
	}
	return out
}

func members(typeName string, t ast.Expr) []string {
	var out []string
	switch t := t.(type) {
	case *ast.StructType:
		for _, field := range t.Fields.List {
			for _, n := range field.Names {
				if n.IsExported() {
					out = append(out, typeName+"."+n.Name)
				}
			}
		}
	case *ast.InterfaceType:
		for _, m := range t.Methods.List {
			for _, n := range m.Names {
				if n.IsExported() {
					out = append(out, typeName+"."+n.Name)
				}
			}
		}
	}
	return out
}

func receiverName(e ast.Expr) string {
	for {
		switch t := e.(type) {
		case *ast.StarExpr:
			e = t.X
		case *ast.IndexExpr:
			e = t.X
		case *ast.IndexListExpr:
			e = t.X
		case *ast.Ident:
			return t.Name
		default:
			return ""
		}
	}
}

// module is the import path of this module; internal packages are found
// under it relative to the working directory (the module's root).
const module = "github.com/rein-k8s/rein/"

// alias is a top-level type alias of a type of an internal package.
type alias struct {
	name       string // the alias, in the pkg/ package
	importPath string // the aliased type's package
	target     string // the aliased type's name
}

// internalAliases returns f's exported aliases of internal types.
func internalAliases(f *ast.File) []alias {
	imports := map[string]string{}
	for _, imp := range f.Imports {
		path := strings.Trim(imp.Path.Value, `"`)
		name := filepath.Base(path)
		if imp.Name != nil {
			name = imp.Name.Name
		}
		imports[name] = path
	}
	var out []alias
	for _, decl := range f.Decls {
		d, ok := decl.(*ast.GenDecl)
		if !ok {
			continue
		}
		for _, spec := range d.Specs {
			s, ok := spec.(*ast.TypeSpec)
			if !ok || !s.Assign.IsValid() || !s.Name.IsExported() {
				continue
			}
			t := s.Type
			if ix, ok := t.(*ast.IndexExpr); ok {
				t = ix.X
			} else if ix, ok := t.(*ast.IndexListExpr); ok {
				t = ix.X
			}
			sel, ok := t.(*ast.SelectorExpr)
			if !ok {
				continue
			}
			pkgIdent, ok := sel.X.(*ast.Ident)
			if !ok {
				continue
			}
			path := imports[pkgIdent.Name]
			if strings.HasPrefix(path, module) && strings.Contains(path, "/internal/") || strings.HasPrefix(path, module+"internal/") {
				out = append(out, alias{name: s.Name.Name, importPath: path, target: sel.Sel.Name})
			}
		}
	}
	return out
}

// aliasedMembers returns "Alias.Member" for every exported method and
// field of the aliased type, read from its package's source.
func aliasedMembers(a alias) ([]string, error) {
	dir := strings.TrimPrefix(a.importPath, module)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("alias %s of %s.%s: %w", a.name, a.importPath, a.target, err)
	}
	var out []string
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".go") || strings.HasSuffix(e.Name(), "_test.go") {
			continue
		}
		f, err := parser.ParseFile(token.NewFileSet(), filepath.Join(dir, e.Name()), nil, 0)
		if err != nil {
			return nil, err
		}
		for _, n := range exported(f) {
			if member, ok := strings.CutPrefix(n, a.target+"."); ok {
				out = append(out, a.name+"."+member)
			}
		}
	}
	return out, nil
}
