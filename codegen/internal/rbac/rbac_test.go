package rbac

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
	"sigs.k8s.io/controller-tools/pkg/genall"
	"sigs.k8s.io/controller-tools/pkg/loader"
	ctrbac "sigs.k8s.io/controller-tools/pkg/rbac"
	"sigs.k8s.io/yaml"
)

// The module of the comparison: the kubebuilder book CronJob's five
// markers, and markers of every shape controller-gen merges, splits or
// leaves out, in files go list includes and files it does not.
var module = map[string]string{
	"go.mod": "module example.com/roles\n\ngo 1.26.0\n",
	// The book's markers, in their own comment above Reconcile's doc.
	"internal/controller/cronjob_controller.go": `package controller

// Reconciler reconciles CronJobs.
type Reconciler struct{}

// +kubebuilder:rbac:groups=batch.tutorial.kubebuilder.io,resources=cronjobs,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=batch.tutorial.kubebuilder.io,resources=cronjobs/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=batch.tutorial.kubebuilder.io,resources=cronjobs/finalizers,verbs=update
// +kubebuilder:rbac:groups=batch,resources=jobs,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=batch,resources=jobs/status,verbs=get

// Reconcile does the work.
func (r *Reconciler) Reconcile() error { return nil }
`,
	// Groups, resources, names, URLs and verbs that merge and overlap.
	"internal/controller/more.go": `// Package controller holds the controllers.
//
// +kubebuilder:rbac:groups="",resources=events,verbs=create;patch
package controller

import "fmt"

// +kubebuilder:rbac:groups="",resources=pods;services,verbs=get;list;watch
// +kubebuilder:rbac:groups=core,resources=configmaps,verbs=get
// +kubebuilder:rbac:groups=apps;batch,resources=deployments;jobs,verbs=get;list
// +kubebuilder:rbac:groups=apps,resources=deployments,verbs=watch;get
// +kubebuilder:rbac:groups=apps,resources=deployments,verbs=watch;get
// +kubebuilder:rbac:groups=apps,resources=statefulsets,verbs=list;get;watch;get
// +kubebuilder:rbac:groups="",resources=configmaps,resourceNames=leader;config,verbs=get;update
// +kubebuilder:rbac:groups="",resources=secrets,resourceNames=config,verbs=get;update
// +kubebuilder:rbac:urls=/metrics;/healthz,verbs=get
// +kubebuilder:rbac:urls=/readyz,verbs=get
// +kubebuilder:rbac:urls=/debug/*,verbs=get;post
// +kubebuilder:rbac:groups=policy,resources=poddisruptionbudgets,verbs=get;*
// +kubebuilder:rbac:groups=networking.k8s.io;extensions,resources=ingresses,verbs=get
// +kubebuilder:rbac:groups=networking.k8s.io,resources=ingresses/status,verbs=update

// +kubebuilder:rbac:groups=coordination.k8s.io,namespace=system,resources=leases,verbs=get;create;update
// +kubebuilder:rbac:groups=coordination.k8s.io,namespace=system,resources=leases,verbs=delete
// +kubebuilder:rbac:groups="",namespace=system,roleName=secret-reader,resources=secrets,verbs=get
// +kubebuilder:rbac:groups="",namespace=other,resources=configmaps,verbs=*
// +kubebuilder:rbac:groups=rbac.authorization.k8s.io,resources=clusterroles,verbs=bind;escalate,roleName=binder

// A godoc comment's markers are not read, nor a body's.
// +kubebuilder:rbac:groups=ignored.example.com,resources=indoc,verbs=get
func work() {
	// +kubebuilder:rbac:groups=ignored.example.com,resources=inbody,verbs=get
	fmt.Println()
}

// +kubebuilder:rbac:groups=types.example.com,resources=abovetype,verbs=get

// Thing is a type whose own doc has a marker, which is not read.
// +kubebuilder:rbac:groups=ignored.example.com,resources=intypedoc,verbs=get
type Thing struct {
	// +kubebuilder:rbac:groups=ignored.example.com,resources=infield,verbs=get
	Field int
}

var (
	// +kubebuilder:rbac:groups=ignored.example.com,resources=invar,verbs=get
	x = 1
)

// +kubebuilder:rbac:groups=last.example.com,resources=atend,verbs=list
`,
	// A second package, which merges into the same roles.
	"internal/jobs/jobs.go": `package jobs

// +kubebuilder:rbac:groups=batch,resources=jobs,verbs=delete;deletecollection
// +kubebuilder:rbac:groups=batch,resources=cronjobs,verbs=get;list;watch
// +kubebuilder:rbac:groups=coordination.k8s.io,namespace=system,resources=leases,verbs=list;watch

// Run runs.
func Run() {}
`,
	// A module below this one, which controller-gen loads too.
	"tools/go.mod": "module example.com/tools\n\ngo 1.26.0\n",
	"tools/x.go":   "package x\n\n// +kubebuilder:rbac:groups=tools.example.com,resources=nested,verbs=get\n",
	// Files go list leaves out: tests, other platforms, ignore tags,
	// testdata, folders starting with _ or ., a module's vendor folder.
	"internal/controller/more_test.go":     "package controller\n\n// +kubebuilder:rbac:groups=ignored.example.com,resources=test,verbs=get\n",
	"internal/controller/more_plan9.go":    "package controller\n\n// +kubebuilder:rbac:groups=ignored.example.com,resources=plan9,verbs=get\n",
	"internal/controller/tool.go":          "//go:build ignore\n\npackage main\n\n// +kubebuilder:rbac:groups=ignored.example.com,resources=tool,verbs=get\n",
	"internal/controller/testdata/x.go":    "package x\n\n// +kubebuilder:rbac:groups=ignored.example.com,resources=testdata,verbs=get\n",
	"_scratch/x.go":                        "package x\n\n// +kubebuilder:rbac:groups=ignored.example.com,resources=underscore,verbs=get\n",
	".hidden/x.go":                         "package x\n\n// +kubebuilder:rbac:groups=ignored.example.com,resources=hidden,verbs=get\n",
	"vendor/example.com/v/x.go":            "package x\n\n// +kubebuilder:rbac:groups=ignored.example.com,resources=vendor,verbs=get\n",
	"internal/controller/not_a_marker.go":  "package controller\n\n/* +kubebuilder:rbac:groups=ignored.example.com,resources=block,verbs=get */\n",
	"internal/controller/no_markers_at.go": "package controller\n\n// Nothing here.\n",
}

func writeModule(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		path := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func manifest(t *testing.T, dir, roleName, header string) []byte {
	t.Helper()
	sources, err := Scan(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := Parse(sources, func(path string) string { return path })
	if err != nil {
		t.Fatal(err)
	}
	if errs := parsed.Check(); len(errs) > 0 {
		t.Fatal(errs)
	}
	out, err := parsed.Manifest(roleName, header)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestManifestIsControllerGens: on the same module, the manifest is
// byte for byte what `controller-gen rbac:roleName=manager-role
// paths=./...` writes, and it holds the roles the markers ask for.
func TestManifestIsControllerGens(t *testing.T) {
	dir := writeModule(t, module)
	ours := manifest(t, dir, "", "")
	theirs := controllerGen(t, dir, "manager-role")
	if !bytes.Equal(ours, theirs) {
		t.Fatalf("Manifest:\n%s\ncontroller-gen:\n%s", ours, theirs)
	}
	// Not an empty agreement: the roles and the merges are there, the
	// markers controller-gen does not read are not.
	if strings.Contains(string(ours), "ignored.example.com") {
		t.Errorf("a marker controller-gen leaves out is in the manifest:\n%s", ours)
	}
	var names []string
	for _, doc := range strings.Split(string(ours), "---\n")[1:] {
		var role rbacv1.Role // a ClusterRole reads as a Role without namespace
		if err := yaml.UnmarshalStrict([]byte(doc), &role); err != nil {
			t.Fatalf("%v:\n%s", err, doc)
		}
		names = append(names, role.Kind+" "+role.Namespace+"/"+role.Name)
	}
	want := "ClusterRole /binder,ClusterRole /manager-role,Role other/manager-role,Role system/manager-role,Role system/secret-reader"
	if got := strings.Join(names, ","); got != want {
		t.Errorf("roles %s, want %s", got, want)
	}
	for _, rule := range []string{
		// apps and batch merged by resource; the book's cronjobs/status kept apart.
		"- apiGroups:\n  - apps\n  - batch\n  resources:\n  - deployments\n",
		"  - cronjobs/status\n  verbs:\n  - get\n  - patch\n  - update\n",
		"- nonResourceURLs:\n  - /healthz\n  - /metrics\n  - /readyz\n  verbs:\n  - get\n",
		"  - poddisruptionbudgets\n  verbs:\n  - '*'\n",
		"  resourceNames:\n  - config\n  - leader\n",
		"- apiGroups:\n  - tools.example.com\n",
	} {
		if !strings.Contains(string(ours), rule) {
			t.Errorf("the manifest lacks\n%s\nin\n%s", rule, ours)
		}
	}

	// Another role name, and a header, as rein-gen writes it.
	if got, want := manifest(t, dir, "ops", "# header\n"), controllerGen(t, dir, "ops"); !bytes.Equal(got, append([]byte("# header\n"), want...)) {
		t.Fatalf("roleName ops:\n%s\ncontroller-gen:\n%s", got, want)
	}
}

// TestNoMarkers: no file with a marker, no manifest (controller-gen
// writes none either).
func TestNoMarkers(t *testing.T) {
	dir := writeModule(t, map[string]string{"go.mod": "module example.com/none\n", "x.go": "package x\n"})
	if out := manifest(t, dir, "", "# h\n"); out != nil {
		t.Fatalf("a manifest without markers:\n%s", out)
	}
}

// TestIgnored names each marker controller-gen leaves out, and only those.
func TestIgnored(t *testing.T) {
	dir := writeModule(t, module)
	sources, err := Scan(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := Parse(sources, func(path string) string { rel, _ := filepath.Rel(dir, path); return rel })
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, line := range parsed.Ignored() {
		if !strings.Contains(line, "in a doc comment or inside a declaration") {
			t.Errorf("no reason given: %s", line)
		}
		_, after, _ := strings.Cut(line, "resources=")
		resource, _, _ := strings.Cut(after, ",")
		got = append(got, strings.SplitN(line, ":", 2)[0]+" "+resource)
	}
	want := []string{
		"internal/controller/more.go indoc", "internal/controller/more.go inbody", "internal/controller/more.go intypedoc",
		"internal/controller/more.go infield", "internal/controller/more.go invar",
	}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("Ignored:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestCheck names file and line of a marker that does not parse, and a
// file with markers that does not.
func TestCheck(t *testing.T) {
	dir := writeModule(t, map[string]string{
		"go.mod": "module example.com/bad\n",
		"a.go":   "package a\n\n// +kubebuilder:rbac:groups=apps,resources=deployments,verb=get\n\n// +kubebuilder:rbac:groups=apps,resources=deployments\n",
	})
	sources, err := Scan(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	display := func(path string) string { rel, _ := filepath.Rel(dir, path); return rel }
	parsed, err := Parse(sources, display)
	if err != nil {
		t.Fatal(err)
	}
	errs := parsed.Check()
	if len(errs) != 2 || !strings.HasPrefix(errs[0].Error(), "a.go:3:1: marker +kubebuilder:rbac:") || !strings.Contains(errs[0].Error(), `"verb"`) ||
		!strings.HasPrefix(errs[1].Error(), "a.go:5:1:") || !strings.Contains(errs[1].Error(), `verbs`) {
		t.Errorf("Check: %v", errs)
	}
	if err := os.WriteFile(filepath.Join(dir, "b.go"), []byte("package a\n\n// +kubebuilder:rbac:groups=apps,resources=x,verbs=get\nfunc {\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	sources, _ = Scan(dir, nil)
	if _, err := Parse(sources, display); err == nil || !strings.Contains(err.Error(), "b.go:4:") {
		t.Errorf("a syntax error: %v", err)
	}
}

// TestScanSkips: the skip function leaves folders out.
func TestScanSkips(t *testing.T) {
	dir := writeModule(t, map[string]string{
		"go.mod":            "module example.com/skip\n",
		"generated/x/x.go":  "package x\n\n// +kubebuilder:rbac:groups=a,resources=b,verbs=get\n",
		"internal/y/y.go":   "package y\n\n// +kubebuilder:rbac:groups=a,resources=c,verbs=get\n",
		"internal/y/README": "+kubebuilder:rbac:groups=a,resources=d,verbs=get\n",
	})
	sources, err := Scan(dir, func(d string) bool { return d == filepath.Join(dir, "generated") })
	if err != nil {
		t.Fatal(err)
	}
	if len(sources) != 1 || sources[0].Path != filepath.Join(dir, "internal/y/y.go") {
		t.Fatalf("Scan: %+v", sources)
	}
}

// controllerGen runs `controller-gen rbac:roleName=roleName paths=./...`
// in dir, as a library, and returns what it writes.
func controllerGen(t *testing.T, dir, roleName string) []byte {
	t.Helper()
	var gen genall.Generator = ctrbac.Generator{RoleName: roleName}
	t.Chdir(dir) // the loader runs go list in the working directory
	rt, err := genall.Generators{&gen}.ForRoots("./...")
	if err != nil {
		t.Fatal(err)
	}
	out := &memory{files: map[string]*bytes.Buffer{}}
	rt.OutputRules = genall.OutputRules{Default: out}
	if failed := rt.Run(); failed {
		t.Fatal("controller-gen's RBAC generator failed")
	}
	b := out.files["role.yaml"]
	if b == nil {
		t.Fatal("controller-gen wrote no role.yaml")
	}
	return b.Bytes()
}

type memory struct{ files map[string]*bytes.Buffer }

func (m *memory) Open(_ *loader.Package, path string) (io.WriteCloser, error) {
	b := &bytes.Buffer{}
	m.files[path] = b
	return nopCloser{b}, nil
}
