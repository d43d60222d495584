package scaffold

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/mod/modfile"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	kruntime "k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/yaml"

	"github.com/rein-k8s/rein/pkg/leader"
)

// newProject runs init in a module of its own (an existing go.mod, so
// that no version is looked up and nothing is downloaded).
func newProject(t *testing.T) (string, *bytes.Buffer) {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module example.com/guestbook\n\ngo 1.24\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var log bytes.Buffer
	if err := Init(t.Context(), InitOptions{Dir: dir, ReinVersion: "v0.1.0", NoTidy: true, Log: &log}); err != nil {
		t.Fatalf("init: %v\n%s", err, log.String())
	}
	return dir, &log
}

func createAPI(t *testing.T, dir string, o APIOptions) string {
	t.Helper()
	var log bytes.Buffer
	o.Dir, o.Log = dir, &log
	if err := CreateAPI(t.Context(), o); err != nil {
		t.Fatalf("create api: %v\n%s", err, log.String())
	}
	return log.String()
}

func tree(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		rel, _ := filepath.Rel(dir, path)
		out[filepath.ToSlash(rel)] = string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestInitInAnExistingModule: init keeps the module's path, adds rein and
// the tools to its go.mod (raising its go line to rein's), and a second
// init is a no-op that says so.
func TestInitInAnExistingModule(t *testing.T) {
	dir, log := newProject(t)
	b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	f, err := modfile.Parse("go.mod", b, nil)
	if err != nil {
		t.Fatal(err)
	}
	if f.Go.Version != GoVersion || len(f.Require) != 1 || f.Require[0].Mod.String() != ReinModule+"@v0.1.0" || len(f.Tool) != len(tools) {
		t.Errorf("go.mod after init:\n%s", b)
	}
	for _, want := range []string{"main.go", "setup.go", "Makefile", "Dockerfile", "README.md", StateFile,
		"deploy/kustomization.yaml", "deploy/deployment.yaml", "deploy/pdb.yaml", "deploy/fencing/kustomization.yaml"} {
		if _, err := os.Stat(filepath.Join(dir, want)); err != nil {
			t.Errorf("init wrote no %s\n%s", want, log.String())
		}
	}
	before := tree(t, dir)
	log.Reset()
	if err := Init(t.Context(), InitOptions{Dir: dir, NoTidy: true, Log: log}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(log.String(), "nothing to do") {
		t.Errorf("a second init said:\n%s", log.String())
	}
	if after := tree(t, dir); !reflect.DeepEqual(before, after) {
		t.Error("a second init changed files")
	}
}

// TestNeverOverwritesAChangedFile: a second create api of the same kind
// changes nothing and says so; a file the user changed is skipped, with
// the lines it lacks, and written once it is as rein-gen left it; a file
// the user changed whose rendering did not change is not mentioned.
func TestNeverOverwritesAChangedFile(t *testing.T) {
	dir, _ := newProject(t)
	guestbook := APIOptions{Group: "webapp", Version: "v1", Kind: "Guestbook", Webhooks: []string{"validating"}}
	createAPI(t, dir, guestbook)
	before := tree(t, dir)
	if log := createAPI(t, dir, guestbook); !strings.Contains(log, "create api: nothing to do") {
		t.Errorf("a second create api said:\n%s", log)
	}
	if after := tree(t, dir); !reflect.DeepEqual(before, after) {
		t.Error("a second create api changed files")
	}

	setup := filepath.Join(dir, "setup.go")
	original := before["setup.go"]
	mine := original + "\n// mine\n"
	if err := os.WriteFile(setup, []byte(mine), 0o644); err != nil {
		t.Fatal(err)
	}
	handler := filepath.Join(dir, "internal/controller/webapp/guestbook.go")
	if err := os.WriteFile(handler, []byte(before["internal/controller/webapp/guestbook.go"]+"\n// mine\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	gizmo := APIOptions{Group: "webapp", Version: "v1", Kind: "Gizmo", ClusterScoped: true}
	log := createAPI(t, dir, gizmo)
	if !strings.Contains(log, "skipped setup.go: you changed it since rein-gen wrote it; rein-gen's version adds these lines:\n\t\twebappcontroller.RegisterGizmo(ctx, webappFactory.Webapp().V1().Gizmo())\n") {
		t.Errorf("create api of a second kind with setup.go changed said:\n%s", log)
	}
	if strings.Contains(log, "guestbook.go") {
		t.Errorf("create api mentions a changed file it had nothing new for:\n%s", log)
	}
	if b, _ := os.ReadFile(setup); string(b) != mine {
		t.Error("setup.go was overwritten")
	}
	if !strings.Contains(log, "wrote api/webapp/v1/gizmo_types.go") || !strings.Contains(log, "updated deploy/crd/kustomization.yaml") {
		t.Errorf("the second kind's files:\n%s", log)
	}
	// Skipped again, for as long as it differs.
	if log := createAPI(t, dir, gizmo); !strings.Contains(log, "skipped setup.go") || !strings.Contains(log, "nothing to do: Gizmo webapp/v1 is in the project; the 1 file(s) above are still skipped") {
		t.Errorf("a rerun with setup.go still changed said:\n%s", log)
	}
	if err := os.WriteFile(setup, []byte(original), 0o644); err != nil {
		t.Fatal(err)
	}
	if log := createAPI(t, dir, gizmo); !strings.Contains(log, "updated setup.go") || strings.Contains(log, "skipped") {
		t.Errorf("a rerun with setup.go as rein-gen wrote it said:\n%s", log)
	}
	if b, _ := os.ReadFile(setup); !strings.Contains(string(b), "RegisterGizmo") {
		t.Errorf("setup.go lacks the second kind:\n%s", b)
	}

	// A deleted file is not written again.
	if err := os.Remove(filepath.Join(dir, "deploy/webhook/service.yaml")); err != nil {
		t.Fatal(err)
	}
	if log := createAPI(t, dir, gizmo); !strings.Contains(log, "nothing to do") {
		t.Errorf("a rerun after a deletion said:\n%s", log)
	}
}

// TestCreateAPIRefuses: mistakes are reported before anything is written.
func TestCreateAPIRefuses(t *testing.T) {
	dir, _ := newProject(t)
	createAPI(t, dir, APIOptions{Group: "webapp", Version: "v1", Kind: "Guestbook"})
	before := tree(t, dir)
	for _, c := range []struct {
		o    APIOptions
		want string
	}{
		{APIOptions{Group: "Web-App", Version: "1", Kind: "guestbook", Webhooks: []string{"mutating"}}, `--group "Web-App"`},
		{APIOptions{Group: "webapp", Version: "1", Kind: "Guestbook"}, `--version "1"`},
		{APIOptions{Group: "webapp", Version: "v1", Kind: "guestbook"}, `--kind "guestbook"`},
		{APIOptions{Group: "webapp", Version: "v1", Kind: "Guestbook", Webhooks: []string{"mutating"}}, `--webhook "mutating"`},
		{APIOptions{Group: "type", Version: "v1", Kind: "Guestbook"}, `--group "type"`},
		{APIOptions{Group: "webapp", Version: "v2", Kind: "Guestbook"}, "another version needs --conversion"},
		{APIOptions{Group: "webapp", Version: "v2", Kind: "Guestbook", Conversion: true, Webhooks: []string{"validating"}}, "webhooks are scaffolded on Guestbook's first version, v1"},
		{APIOptions{Group: "webapp", Version: "v1", Kind: "Guestbook", ClusterScoped: true}, "a kind's scope cannot change"},
	} {
		c.o.Dir = dir
		err := CreateAPI(t.Context(), c.o)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("create api %+v: %v, want %q", c.o, err, c.want)
		}
	}
	if after := tree(t, dir); !reflect.DeepEqual(before, after) {
		t.Error("a refused create api changed files")
	}
	if err := CreateAPI(t.Context(), APIOptions{Dir: t.TempDir(), Group: "webapp", Version: "v1", Kind: "Guestbook"}); err == nil || !strings.Contains(err.Error(), "run rein-gen init there first") {
		t.Errorf("create api outside a project: %v", err)
	}
}

// TestRenderConversionAndWebhooks: a second version converts through the
// first, which becomes the hub; setup.go registers the group's conversion
// and the CA bundle goes to its CRD; one webhook configuration name of
// each sort in the whole project.
func TestRenderConversionAndWebhooks(t *testing.T) {
	st := &state{Module: "example.com/guestbook", Domain: "example.com", Name: "guestbook", Namespace: "guestbook-system", Kinds: []Kind{
		{Group: "webapp", Version: "v1", Kind: "Guestbook", Webhooks: []string{"defaulting", "validating"}, Conversion: true},
		{Group: "webapp", Version: "v1", Kind: "Visitor", Webhooks: []string{"validating"}},
		{Group: "webapp", Version: "v2", Kind: "Guestbook", Conversion: true},
	}}
	m, err := renderMap(st)
	if err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string][]string{
		"setup.go": {"webappfactory.RegisterConversion(s)", `CRDs:                            []string{"guestbooks.webapp.example.com"}`,
			"webappv1ctrl.RegisterVisitorValidator(s, webappcontroller.ValidateVisitor)"},
		"api/webapp/v1/guestbook_hub.go":        {"func (*Guestbook) Hub() {}"},
		"api/webapp/v2/guestbook_conversion.go": {"func (src *Guestbook) ConvertTo(hub conversion.Hub) error", `webappv1 "example.com/guestbook/api/webapp/v1"`},
		"api/webapp/v1/guestbook_types.go":      {"+kubebuilder:storageversion"},
		"api/webapp/v1/guestbook_webhooks.go":   {"+kubebuilder:webhookconfiguration:mutating=false,name=guestbook", "+kubebuilder:webhookconfiguration:mutating=true,name=guestbook"},
		"deploy/webhook/kustomization.yaml":     {"- service.yaml\n- webhooks.yaml\n"},
		"deploy/crd/kustomization.yaml":         {"- webapp.example.com_guestbooks.yaml\n- webapp.example.com_visitors.yaml\n"},
	} {
		for _, w := range want {
			if !strings.Contains(m[path], w) {
				t.Errorf("%s lacks %q:\n%s", path, w, m[path])
			}
		}
	}
	if strings.Contains(m["api/webapp/v1/visitor_webhooks.go"], "webhookconfiguration") {
		t.Error("a second webhookconfiguration marker (rein-gen refuses two)")
	}
	if strings.Contains(m["api/webapp/v2/guestbook_types.go"], "storageversion") {
		t.Error("v2 is a storage version too")
	}
	for _, p := range []string{"internal/controller/webapp/guestbook_v2.go", "api/webapp/v2/guestbook_hub.go"} {
		if _, ok := m[p]; ok {
			t.Errorf("%s rendered", p)
		}
	}
}

// TestFencingPolicyIsRein's: deploy/fencing/fencing.yaml holds exactly the
// policy and binding pkg/leader defines for the project's Lease.
func TestFencingPolicyIsReins(t *testing.T) {
	st := &state{Module: "example.com/guestbook", Domain: "example.com", Name: "guestbook", Namespace: "guestbook-system"}
	m, err := renderMap(st)
	if err != nil {
		t.Fatal(err)
	}
	binding, err := leader.FencingPolicyBinding("guestbook-system", "guestbook")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]kruntime.Object{"ValidatingAdmissionPolicy": leader.FencingPolicy(), "ValidatingAdmissionPolicyBinding": binding}
	for _, doc := range strings.Split(m["deploy/fencing/fencing.yaml"], "\n---\n") {
		var u unstructured.Unstructured
		if err := yaml.Unmarshal([]byte(doc), &u.Object); err != nil {
			t.Fatal(err)
		}
		w, ok := want[u.GetKind()]
		if !ok {
			t.Errorf("fencing.yaml has a %s", u.GetKind())
			continue
		}
		delete(want, u.GetKind())
		got := reflect.New(reflect.TypeOf(w).Elem()).Interface().(kruntime.Object)
		if err := kruntime.DefaultUnstructuredConverter.FromUnstructured(u.Object, got); err != nil {
			t.Fatal(err)
		}
		if !equality.Semantic.DeepEqual(got, w) {
			t.Errorf("fencing.yaml's %s differs from pkg/leader's:\n got %+v\nwant %+v", u.GetKind(), got, w)
		}
	}
	for kind := range want {
		t.Errorf("fencing.yaml has no %s", kind)
	}
}

// TestGoVersionIsReins: a new project's go line is rein's own.
func TestGoVersionIsReins(t *testing.T) {
	_, file, _, _ := runtime.Caller(0)
	b, err := os.ReadFile(filepath.Join(filepath.Dir(file), "..", "..", "..", "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	f, err := modfile.Parse("go.mod", b, nil)
	if err != nil {
		t.Fatal(err)
	}
	if f.Go.Version != GoVersion {
		t.Errorf("GoVersion %s, rein's go.mod says %s", GoVersion, f.Go.Version)
	}
}

// TestRenderedYAMLParses: every YAML file of a project with every feature
// is YAML with a kind, document by document.
func TestRenderedYAMLParses(t *testing.T) {
	st := &state{Module: "example.com/guestbook", Domain: "example.com", Name: "guestbook", Namespace: "guestbook-system", Kinds: []Kind{
		{Group: "webapp", Version: "v1", Kind: "Guestbook", Webhooks: []string{"defaulting", "validating"}, Conversion: true},
		{Group: "webapp", Version: "v2", Kind: "Guestbook", Conversion: true},
	}}
	m, err := renderMap(st)
	if err != nil {
		t.Fatal(err)
	}
	for path, content := range m {
		if !strings.HasSuffix(path, ".yaml") {
			continue
		}
		for _, doc := range strings.Split(content, "\n---\n") {
			var obj map[string]any
			if err := yaml.Unmarshal([]byte(doc), &obj); err != nil || obj["kind"] == nil {
				t.Errorf("%s: %v, kind %v:\n%s", path, err, obj["kind"], doc)
			}
		}
	}
}
