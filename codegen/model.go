package codegen

import (
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"unicode"

	"github.com/rein-k8s/rein/codegen/internal/crds"
)

// apiPackage is one group/version package of API types.
type apiPackage struct {
	ImportPath string
	Dir        string
	Name       string // Go package name, e.g. v1alpha1
	Group      string // from +groupName, e.g. vm.rein.dev
	Version    string // the package name
	Kinds      []*kind
	// HasRegister is true when the package defines AddToScheme itself.
	HasRegister bool
}

// kind is one type marked +genclient.
type kind struct {
	Name          string // VirtualMachine
	Plural        string // virtualmachines
	Namespaced    bool
	HasStatus     bool
	HasList       bool // the package defines <Name>List
	StatusType    string
	DeepCopyReady bool // +k8s:deepcopy-gen:interfaces=...runtime.Object or package-level deepcopy
}

// GoGroup is the Go name of the group's accessor: "vm.rein.dev" → "Vm".
func (p *apiPackage) GoGroup() string { return goName(strings.SplitN(p.Group, ".", 2)[0]) }

// GroupPackage is the package name of the group's controllers: "vm".
func (p *apiPackage) GroupPackage() string { return pkgName(strings.SplitN(p.Group, ".", 2)[0]) }

func goName(s string) string {
	var b strings.Builder
	upper := true
	for _, r := range s {
		if r == '-' || r == '_' {
			upper = true
			continue
		}
		if upper {
			r = unicode.ToUpper(r)
			upper = false
		}
		b.WriteRune(r)
	}
	return b.String()
}

func pkgName(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '-' || r == '_' || r == '.' {
			return -1
		}
		return unicode.ToLower(r)
	}, s)
}

// plural is a kind's resource name: controller-tools' default, so that the
// CRD, the clientset (given it as a plural exception) and rein's
// controllers all use one name. +kubebuilder:resource:path overrides it.
func plural(kind string) string { return crds.DefaultPlural(kind) }

// markers of a comment group, "+name=value" or "+name", one per line.
func markers(groups ...*ast.CommentGroup) map[string]string {
	out := map[string]string{}
	for _, g := range groups {
		if g == nil {
			continue
		}
		for _, c := range g.List {
			text := strings.TrimSpace(strings.TrimPrefix(strings.TrimPrefix(c.Text, "//"), "/*"))
			if !strings.HasPrefix(text, "+") {
				continue
			}
			name, value, _ := strings.Cut(text[1:], "=")
			out[strings.TrimSpace(name)] = strings.TrimSpace(value)
		}
	}
	return out
}

// loadPackage parses the Go files of one API package (without type
// checking: the generators that follow check types) and reads its kinds.
func loadPackage(importPath, dir string) (*apiPackage, error) {
	fset := token.NewFileSet()
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("package %s: %w", importPath, err)
	}
	p := &apiPackage{ImportPath: importPath, Dir: dir}
	var files []*ast.File
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, filepath.Join(dir, name), nil, parser.ParseComments)
		if err != nil {
			return nil, fmt.Errorf("package %s: %w", importPath, err)
		}
		files = append(files, f)
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("package %s: no Go files in %s", importPath, dir)
	}
	structs := map[string]*ast.StructType{}
	type candidate struct {
		name string
		m    map[string]string
		st   *ast.StructType
		pos  token.Position
	}
	var candidates []candidate
	for _, f := range files {
		p.Name = f.Name.Name
		if g, ok := markers(f.Doc)["groupName"]; ok {
			p.Group = g
		}
		// The package doc may sit in any file's comments above "package".
		for _, cg := range f.Comments {
			if cg.End() < f.Package {
				if g, ok := markers(cg)["groupName"]; ok {
					p.Group = g
				}
			}
		}
		for _, decl := range f.Decls {
			switch d := decl.(type) {
			case *ast.FuncDecl:
				if d.Recv == nil && d.Name.Name == "AddToScheme" {
					p.HasRegister = true
				}
			case *ast.GenDecl:
				for _, spec := range d.Specs {
					switch s := spec.(type) {
					case *ast.ValueSpec:
						for _, n := range s.Names {
							if n.Name == "AddToScheme" {
								p.HasRegister = true
							}
						}
					case *ast.TypeSpec:
						st, ok := s.Type.(*ast.StructType)
						if !ok {
							continue
						}
						structs[s.Name.Name] = st
						doc := s.Doc
						if doc == nil {
							doc = d.Doc
						}
						m := markers(doc)
						if _, ok := m["genclient"]; ok {
							candidates = append(candidates, candidate{s.Name.Name, m, st, fset.Position(s.Pos())})
						}
					}
				}
			}
		}
	}
	p.Version = p.Name
	var errs []error
	if p.Group == "" {
		errs = append(errs, fmt.Errorf("package %s has no +groupName marker: add `// +groupName=example.com` above `package %s` in its doc.go", importPath, p.Name))
	}
	if len(candidates) == 0 {
		errs = append(errs, fmt.Errorf("package %s has no type marked +genclient: mark each kind with `// +genclient` (and `// +genclient:nonNamespaced` for cluster-scoped kinds)", importPath))
	}
	for _, c := range candidates {
		k := &kind{Name: c.name, Plural: plural(c.name), Namespaced: true}
		if _, ok := c.m["genclient:nonNamespaced"]; ok {
			k.Namespaced = false
		}
		if path, ok := c.m["kubebuilder:resource:path"]; ok {
			k.Plural = path
		}
		var hasMeta bool
		for _, field := range c.st.Fields.List {
			switch {
			case len(field.Names) == 0 && typeName(field.Type) == "ObjectMeta":
				hasMeta = true
			case len(field.Names) == 1 && field.Names[0].Name == "Status":
				k.HasStatus = true
				k.StatusType = typeName(field.Type)
			}
		}
		if !hasMeta {
			errs = append(errs, fmt.Errorf(`%s: type %s is marked +genclient but does not embed metav1.ObjectMeta: add the field "metav1.ObjectMeta `+"`json:\"metadata,omitempty\"`"+`"`, c.pos, c.name))
			continue
		}
		if _, ok := c.m["k8s:deepcopy-gen:interfaces"]; !ok {
			errs = append(errs, fmt.Errorf("%s: type %s needs `// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object` so that it implements runtime.Object", c.pos, c.name))
			continue
		}
		_, k.HasList = structs[c.name+"List"]
		p.Kinds = append(p.Kinds, k)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	sort.Slice(p.Kinds, func(i, j int) bool { return p.Kinds[i].Name < p.Kinds[j].Name })
	return p, nil
}

// typeName is the name of a (possibly qualified or pointer) type
// expression: metav1.ObjectMeta → ObjectMeta.
func typeName(e ast.Expr) string {
	switch t := e.(type) {
	case *ast.Ident:
		return t.Name
	case *ast.SelectorExpr:
		return t.Sel.Name
	case *ast.StarExpr:
		return typeName(t.X)
	}
	return ""
}
