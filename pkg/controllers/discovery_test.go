package controllers_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/kubernetes/scheme"
)

// generatedKind is what a generated kind file of this folder states.
type generatedKind struct {
	file, kind, apiImport, plural string
	namespaced, statusHelper      bool
}

// TestBuiltinKindsMatchDiscovery: every generated controller names its
// kind's resource as the apiserver serves it (plural and scope), and has a
// status handler helper exactly when the resource has a status
// subresource. The kinds are read from the generated files, so a kind
// added to codegen/builtin.go is checked without a change here.
func TestBuiltinKindsMatchDiscovery(t *testing.T) {
	kinds := readGeneratedKinds(t)
	if len(kinds) < 25 {
		t.Fatalf("found %d generated kinds, want the 25 or more of codegen/builtin.go", len(kinds))
	}
	byType := map[string]schema.GroupVersionKind{} // "importpath.Kind" → GVK
	for gvk, typ := range scheme.Scheme.AllKnownTypes() {
		byType[typ.PkgPath()+"."+typ.Name()] = gvk
	}
	client, err := discovery.NewDiscoveryClientForConfig(env.Config())
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range kinds {
		gvk, ok := byType[k.apiImport+"."+k.kind]
		if !ok {
			t.Errorf("%s: %s.%s is not a type client-go's scheme knows", k.file, k.apiImport, k.kind)
			continue
		}
		list, err := client.ServerResourcesForGroupVersion(gvk.GroupVersion().String())
		if err != nil {
			t.Errorf("%s: %v", k.file, err)
			continue
		}
		var found, status bool
		for _, r := range list.APIResources {
			if r.Name == k.plural+"/status" {
				status = true
			}
			if r.Kind != k.kind || strings.Contains(r.Name, "/") {
				continue
			}
			found = true
			if r.Name != k.plural || r.Namespaced != k.namespaced {
				t.Errorf("%s: %s is resource %q, namespaced %v; the apiserver serves %q, namespaced %v", k.file, k.kind, k.plural, k.namespaced, r.Name, r.Namespaced)
			}
		}
		if !found {
			t.Errorf("%s: the apiserver serves no resource of kind %s in %s", k.file, k.kind, gvk.GroupVersion())
		}
		if status != k.statusHelper {
			t.Errorf("%s: status handler helper %v, but status subresource %v", k.file, k.statusHelper, status)
		}
	}
}

// readGeneratedKinds parses the kind files of the generated controllers
// (group/version/kind.go) for their Resource variable.
func readGeneratedKinds(t *testing.T) []generatedKind {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("*", "*", "*.go"))
	if err != nil {
		t.Fatal(err)
	}
	var out []generatedKind
	for _, file := range files {
		src, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		f, err := parser.ParseFile(token.NewFileSet(), file, src, 0)
		if err != nil {
			t.Fatal(err)
		}
		imports := map[string]string{}
		for _, imp := range f.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			if imp.Name != nil {
				imports[imp.Name.Name] = path
			}
		}
		k := generatedKind{file: file}
		for _, decl := range f.Decls {
			switch d := decl.(type) {
			case *ast.FuncDecl:
				if strings.HasPrefix(d.Name.Name, "Register") && strings.HasSuffix(d.Name.Name, "StatusHandler") {
					k.statusHelper = true
				}
			case *ast.GenDecl:
				for _, spec := range d.Specs {
					vs, ok := spec.(*ast.ValueSpec)
					if !ok || len(vs.Names) != 1 || !strings.HasSuffix(vs.Names[0].Name, "Resource") || len(vs.Values) != 1 {
						continue
					}
					lit, ok := vs.Values[0].(*ast.CompositeLit)
					if !ok {
						continue
					}
					k.kind = strings.TrimSuffix(vs.Names[0].Name, "Resource")
					for _, elt := range lit.Elts {
						kv := elt.(*ast.KeyValueExpr)
						switch kv.Key.(*ast.Ident).Name {
						case "GVK": // alias.SchemeGroupVersion.WithKind("Kind")
							call := kv.Value.(*ast.CallExpr)
							alias := call.Fun.(*ast.SelectorExpr).X.(*ast.SelectorExpr).X.(*ast.Ident).Name
							k.apiImport = imports[alias]
						case "Plural":
							k.plural, _ = strconv.Unquote(kv.Value.(*ast.BasicLit).Value)
						case "Namespaced":
							k.namespaced = kv.Value.(*ast.Ident).Name == "true"
						}
					}
				}
			}
		}
		if k.kind != "" {
			out = append(out, k)
		}
	}
	if reflect.DeepEqual(out, []generatedKind(nil)) {
		t.Fatal("no generated kind files found")
	}
	return out
}
