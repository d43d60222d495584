package codegen

import (
	"flag"
	"go/ast"
	"go/format"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files of testdata/golden")

// goldenPackages: a namespaced kind with a status and a cluster-scoped kind
// without one, in two versions of one group.
var goldenPackages = []*apiPackage{
	{ImportPath: "example.com/m/api/fleet/v1", Name: "v1", Version: "v1", Group: "fleet.example.com", Kinds: []*kind{
		{Name: "Ship", Plural: "ships", Namespaced: true, HasStatus: true, StatusType: "ShipStatus"},
		{Name: "Harbor", Plural: "harbors"},
	}},
	{ImportPath: "example.com/m/api/fleet/v2", Name: "v2", Version: "v2", Group: "fleet.example.com", Kinds: []*kind{
		{Name: "Ship", Plural: "ships", Namespaced: true, HasStatus: true, StatusType: "ShipStatus"},
	}},
}

// TestGoldenControllers compares the generated controller files with
// testdata/golden (go test ./codegen -run Golden -update rewrites them),
// and checks that they are gofmt-clean and document every exported name.
func TestGoldenControllers(t *testing.T) {
	dir := t.TempDir()
	if err := writeControllers(goldenPackages, dir, "example.com/m/generated/controllers", "// Copyright the rein authors.\n\n"); err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "golden")
	var files []string
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		files = append(files, rel)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"fleet/factory.go", "fleet/v1/harbor.go", "fleet/v1/interface.go", "fleet/v1/ship.go", "fleet/v2/interface.go", "fleet/v2/ship.go"}
	if strings.Join(files, " ") != strings.Join(want, " ") {
		t.Fatalf("generated files %v, want %v", files, want)
	}
	for _, rel := range files {
		got, err := os.ReadFile(filepath.Join(dir, rel))
		if err != nil {
			t.Fatal(err)
		}
		goldenFile := filepath.Join(golden, rel+".golden")
		if *update {
			if err := os.MkdirAll(filepath.Dir(goldenFile), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(goldenFile, got, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		wantContent, err := os.ReadFile(goldenFile)
		if err != nil {
			t.Fatalf("%v (run with -update to create the golden files)", err)
		}
		if string(got) != string(wantContent) {
			t.Errorf("%s differs from %s (run with -update after checking the change):\n%s", rel, goldenFile, got)
		}
		if formatted, err := format.Source(got); err != nil || string(formatted) != string(got) {
			t.Errorf("%s is not gofmt-clean: %v", rel, err)
		}
		checkDocumented(t, rel, got)
	}
}

// checkDocumented fails for an exported declaration without a doc comment.
func checkDocumented(t *testing.T, name string, src []byte) {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), name, src, parser.ParseComments)
	if err != nil {
		t.Fatal(err)
	}
	for _, decl := range f.Decls {
		switch d := decl.(type) {
		case *ast.FuncDecl:
			if d.Name.IsExported() && d.Recv == nil && d.Doc == nil {
				t.Errorf("%s: func %s has no doc comment", name, d.Name.Name)
			}
		case *ast.GenDecl:
			for _, spec := range d.Specs {
				var ident *ast.Ident
				var doc *ast.CommentGroup
				switch s := spec.(type) {
				case *ast.TypeSpec:
					ident, doc = s.Name, s.Doc
				case *ast.ValueSpec:
					ident, doc = s.Names[0], s.Doc
				default:
					continue
				}
				if doc == nil {
					doc = d.Doc
				}
				if ident.IsExported() && doc == nil {
					t.Errorf("%s: %s has no doc comment", name, ident.Name)
				}
			}
		}
	}
	if f.Doc == nil && strings.HasSuffix(name, "factory.go") {
		t.Errorf("%s: no package doc", name)
	}
}

func writeAPI(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

const goodKind = `
// +genclient
// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object
type Ship struct {
	metav1.TypeMeta   ` + "`json:\",inline\"`" + `
	metav1.ObjectMeta ` + "`json:\"metadata,omitempty\"`" + `
	Status ShipStatus
}
`

// TestBadInputIsNamed: each mistake gives an error that names the package
// or type and says what to add; none panics.
func TestBadInputIsNamed(t *testing.T) {
	for _, tc := range []struct {
		name  string
		files map[string]string
		want  []string
	}{
		{"no groupName", map[string]string{"doc.go": "package v1\n", "types.go": "package v1\n" + goodKind},
			[]string{"example.com/m/api/v1", "+groupName"}},
		{"no genclient", map[string]string{"doc.go": "// +groupName=x.io\npackage v1\n", "types.go": "package v1\ntype Ship struct{}\n"},
			[]string{"example.com/m/api/v1", "+genclient", "+kubebuilder:object:root=true"}},
		{"no ObjectMeta", map[string]string{"doc.go": "// +groupName=x.io\npackage v1\n",
			"types.go": "package v1\n// +genclient\n// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object\ntype Ship struct{ Name string }\n"},
			[]string{"types.go:", "Ship", "metav1.ObjectMeta"}},
		{"syntax error", map[string]string{"doc.go": "// +groupName=x.io\npackage v1\n", "types.go": "package v1\ntype Ship struct {\n"},
			[]string{"types.go:", "expected"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := writeAPI(t, tc.files)
			p, err := loadPackage("example.com/m/api/v1", dir, dir)
			if err == nil {
				err = validate([]*apiPackage{p})
			}
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
	dir := writeAPI(t, map[string]string{"doc.go": "// +groupName=fleet.example.com\npackage v1\n", "types.go": "package v1\n" + goodKind + `
// +genclient
// +genclient:nonNamespaced
// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object
type Harbor struct {
	metav1.ObjectMeta
}
type HarborList struct{}
`})
	p, err := loadPackage("example.com/m/api/v1", dir, dir)
	if err != nil {
		t.Fatal(err)
	}
	if p.Group != "fleet.example.com" || len(p.Kinds) != 2 {
		t.Fatalf("package %+v", p)
	}
	harbor, ship := p.Kinds[0], p.Kinds[1]
	if harbor.Namespaced || !harbor.HasList || harbor.HasStatus || harbor.Plural != "harbors" {
		t.Errorf("Harbor %+v", harbor)
	}
	if !ship.Namespaced || ship.HasList || !ship.HasStatus || ship.StatusType != "ShipStatus" {
		t.Errorf("Ship %+v", ship)
	}
}

func TestPlural(t *testing.T) {
	for kind, want := range map[string]string{"VirtualMachine": "virtualmachines", "Policy": "policies", "Gateway": "gateways", "Ingress": "ingresses", "Box": "boxes", "Patch": "patches", "Gizmo": "gizmoes"} {
		if got := plural(kind); got != want {
			t.Errorf("plural(%s) = %s, want %s", kind, got, want)
		}
	}
}

// TestMarkersOfOtherTools: kubebuilder markers no controller-tools
// generator knows, outside the namespaces those generators use, are
// warnings wherever they are (the license header above the package
// clause, after the imports, a type's or a field's doc, the end of the
// file); the same marker in a generator's namespace is a typo.
func TestMarkersOfOtherTools(t *testing.T) {
	types := `/*
Copyright the authors.
*/
// +kubebuilder:docs-gen:collapse=Apache License

package v1

import metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

// +kubebuilder:docs-gen:collapse=Imports

// Ship sails.
// +kubebuilder:object:root=true
// +kubebuilder:docs-gen:collapse=Ship
type Ship struct {
	metav1.TypeMeta   ` + "`json:\",inline\"`" + `
	metav1.ObjectMeta ` + "`json:\"metadata,omitempty\"`" + `
	// +kubebuilder:scaffold:field
	Crew int32 ` + "`json:\"crew,omitempty\"`" + `
}

// +kubebuilder:docs-gen:collapse=Root Object Definitions
`
	dir := writeAPI(t, map[string]string{"doc.go": "// +groupName=fleet.example.com\npackage v1\n", "types.go": types})
	p, err := loadPackage("example.com/m/api/v1", dir, "api/v1")
	if err != nil {
		t.Fatal(err)
	}
	if err := validate([]*apiPackage{p}); err != nil {
		t.Fatalf("markers of other tools refused: %v", err)
	}
	got := strings.Join(markerWarnings([]*apiPackage{p}), "\n")
	want := "rein-gen: warning: +kubebuilder:docs-gen:collapse (api/v1/types.go:4:1 and 3 more) is no marker of controller-gen's generators: ignored\n" +
		"rein-gen: warning: +kubebuilder:scaffold:field (api/v1/types.go:18:2) is no marker of controller-gen's generators: ignored"
	if got != want {
		t.Errorf("warnings:\n%s\nwant:\n%s", got, want)
	}

	// In a generators' namespace, or a letter away from one: a typo, an
	// error, wherever it is.
	for typo, suggestion := range map[string]string{
		"+kubebuilder:validation:Minimun=1": "+kubebuilder:validation:Minimum",
		"+kubebuilder:valdation:Minimum=1":  "+kubebuilder:validation:Minimum",
		"+kubebuilder:printcolum:name=x":    "+kubebuilder:printcolumn",
		"+kubebuilder:object:roots=true":    "+kubebuilder:object:root",
	} {
		dir := writeAPI(t, map[string]string{"doc.go": "// +groupName=fleet.example.com\npackage v1\n",
			"types.go": strings.Replace(types, "// +kubebuilder:docs-gen:collapse=Imports", "// "+typo, 1)})
		p, err := loadPackage("example.com/m/api/v1", dir, "api/v1")
		if err != nil {
			t.Fatal(err)
		}
		err = validate([]*apiPackage{p})
		if err == nil || !strings.Contains(err.Error(), "api/v1/types.go:10:1: marker "+typo+": no such kubebuilder marker (a typo of "+suggestion+"?)") {
			t.Errorf("%s: %v", typo, err)
		}
	}
}
