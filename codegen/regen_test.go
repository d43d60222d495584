package codegen_test

import (
	"bytes"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/rein-k8s/rein/codegen"
)

// The API a user evolves in TestRegenerate, one hand-written file at a
// time: two groups, a namespaced kind with a status.
const (
	fleetDoc = "// +groupName=fleet.example.com\npackage v1\n"
	portDoc  = "// +groupName=port.example.com\npackage v1\n"
	fleetV2  = "// +groupName=fleet.example.com\npackage v2\n"
	shipV1   = `package v1

import metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

// +genclient
// +kubebuilder:subresource:status
type Ship struct {
	metav1.TypeMeta   ` + "`json:\",inline\"`" + `
	metav1.ObjectMeta ` + "`json:\"metadata,omitempty\"`" + `
	Spec              ShipSpec   ` + "`json:\"spec\"`" + `
	Status            ShipStatus ` + "`json:\"status,omitempty\"`" + `
}

type ShipSpec struct {
	// +kubebuilder:validation:Minimum=1
	Crew int32 ` + "`json:\"crew\"`" + `
}

type ShipStatus struct {
	Seen bool ` + "`json:\"seen,omitempty\"`" + `
}
`
	harborV1 = `package v1

import metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

// +genclient
// +genclient:nonNamespaced
// +kubebuilder:resource:scope=Cluster
type Harbor struct {
	metav1.TypeMeta   ` + "`json:\",inline\"`" + `
	metav1.ObjectMeta ` + "`json:\"metadata,omitempty\"`" + `
	Berths            int32 ` + "`json:\"berths,omitempty\"`" + `
}
`
	convertV2 = `package v2

import "github.com/rein-k8s/rein/pkg/conversion"

// ConvertTo converts s to the hub, v1.
func (s *Ship) ConvertTo(hub conversion.Hub) error { return nil }

// ConvertFrom fills s from the hub, v1.
func (s *Ship) ConvertFrom(hub conversion.Hub) error { return nil }
`
	dockV1 = `package v1

import metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

// +genclient
type Dock struct {
	metav1.TypeMeta   ` + "`json:\",inline\"`" + `
	metav1.ObjectMeta ` + "`json:\"metadata,omitempty\"`" + `
	Length            int32 ` + "`json:\"length,omitempty\"`" + `
}
`
)

// TestRegenerate evolves an API as a user does and reruns rein-gen after
// each step. After every step the run succeeds, the module builds and
// vets, no file rein-gen wrote for an earlier API remains, and the tree
// equals a generation from scratch of the same API, byte for byte.
// mutatingByURL is a mutating webhook of Ship v1 that the apiserver calls
// by URL (a server outside the cluster), not through a Service.
const mutatingByURL = "// +kubebuilder:webhook:url=https://hooks.example.com:9443/mutate-ship,mutating=true,failurePolicy=fail,sideEffects=None,groups=fleet.example.com,resources=ships,verbs=create,versions=v1,name=mship.fleet.example.com,admissionReviewVersions=v1\n"

// rbacMarkers are RBAC markers of a package that is no API package.
const rbacMarkers = `package notes

// +kubebuilder:rbac:groups=fleet.example.com,resources=ships,verbs=get;list;watch
// +kubebuilder:rbac:groups=fleet.example.com,resources=ships/status,verbs=update
`

func TestRegenerate(t *testing.T) {
	if testing.Short() {
		t.Skip("generates and builds a module six times")
	}
	dir := newModule(t, "example.com/shipyard", map[string]string{
		"api/fleet/v1/doc.go":   fleetDoc,
		"api/fleet/v1/ship.go":  shipV1,
		"api/port/v1/doc.go":    portDoc,
		"api/port/v1/dock.go":   dockV1,
		"internal/notes/doc.go": "// Package notes is hand-written and must survive every run.\npackage notes\n",
	})
	steps := []struct {
		name   string
		change func()
		apis   []string
		// gone are files that must not exist after the step.
		gone []string
	}{
		{"generate", func() {}, []string{"./api/..."}, nil},
		{"add a kind", func() { writeFile(t, dir, "api/fleet/v1/harbor.go", harborV1) }, []string{"./api/..."}, nil},
		{"rename a field", func() {
			writeFile(t, dir, "api/fleet/v1/ship.go", strings.ReplaceAll(shipV1, "Crew int32 `json:\"crew\"`", "Sailors int32 `json:\"sailors\"`"))
		}, []string{"./api/..."}, nil},
		{"remove a kind", func() { removeAll(t, dir, "api/fleet/v1/harbor.go") }, []string{"./api/..."}, []string{
			"config/crd/fleet.example.com_harbors.yaml", "generated/controllers/fleet/v1/harbor.go",
			"generated/listers/fleet/v1/harbor.go", "generated/clientset/versioned/typed/fleet/v1/harbor.go",
			"generated/informers/externalversions/fleet/v1/harbor.go",
		}},
		{"drop a group", func() { removeAll(t, dir, "api/port") }, []string{"./api/fleet/v1"}, []string{
			"config/crd/port.example.com_docks.yaml", "generated/controllers/port",
			"generated/listers/port", "generated/clientset/versioned/typed/port", "generated/informers/externalversions/port",
		}},
		{"add a version", func() {
			writeFile(t, dir, "api/fleet/v1/ship.go", strings.Replace(shipV1, "// +genclient\n", "// +genclient\n// +kubebuilder:storageversion\n", 1))
			writeFile(t, dir, "api/fleet/v2/doc.go", fleetV2)
			writeFile(t, dir, "api/fleet/v2/ship.go", strings.Replace(shipV1, "package v1", "package v2", 1))
		}, []string{"./api/..."}, nil},
		{"add webhooks, conversion and RBAC markers", func() {
			writeFile(t, dir, "api/fleet/v1/hub.go", "package v1\n\n"+webhookMarker("")+mutatingByURL+"\n// Hub is the version v2 converts through.\nfunc (*Ship) Hub() {}\n")
			writeFile(t, dir, "api/fleet/v2/convert.go", convertV2)
			writeFile(t, dir, "internal/notes/rbac.go", rbacMarkers)
		}, []string{"./api/..."}, nil},
		{"remove webhooks, conversion and RBAC markers", func() {
			removeAll(t, dir, "api/fleet/v1/hub.go")
			removeAll(t, dir, "api/fleet/v2/convert.go")
			removeAll(t, dir, "internal/notes/rbac.go")
		}, []string{"./api/..."}, []string{
			"config/webhook/webhooks.yaml", "generated/controllers/fleet/conversion.go", "generated/controllers/fleet/v1/ship_webhooks.go",
			"config/rbac",
		}},
	}
	for i, step := range steps {
		step.change()
		opts := codegen.Options{Dir: dir, APIPackages: step.apis, OutputPackage: "example.com/shipyard/generated", CRDDir: "config/crd", WebhookDir: "config/webhook", RBACDir: "config/rbac"}
		var log bytes.Buffer
		opts.Log = &log
		if err := codegen.Run(t.Context(), opts); err != nil {
			t.Fatalf("step %d (%s): rein-gen: %v\n%s", i, step.name, err, log.String())
		}
		// From scratch: the hand-written files alone, generated once,
		// while go vet checks the regenerated module (its time is mostly
		// the compiler's, in another process).
		fresh := t.TempDir()
		copyHandWritten(t, dir, fresh)
		scratch := opts
		scratch.Dir, scratch.Log, scratch.NoTypeCheck = fresh, nil, true
		scratchErr, scratchDone := make(chan error, 1), make(chan struct{})
		go func() {
			defer close(scratchDone)
			scratchErr <- codegen.Run(t.Context(), scratch)
		}()
		t.Cleanup(func() { <-scratchDone }) // before fresh is removed, should the step fail first
		goCmd(t, dir, "vet", "./...")
		for _, g := range step.gone {
			if _, err := os.Stat(filepath.Join(dir, g)); err == nil {
				t.Errorf("step %d (%s): %s remains", i, step.name, g)
			}
		}
		// Webhooks and conversion come and go with their markers and
		// methods.
		crd, err := os.ReadFile(filepath.Join(dir, "config/crd/fleet.example.com_ships.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		_, webhooksErr := os.Stat(filepath.Join(dir, "config/webhook/webhooks.yaml"))
		want := step.name == "add webhooks, conversion and RBAC markers"
		// The role comes and goes with the markers of a package that is
		// no API package.
		if role, err := os.ReadFile(filepath.Join(dir, "config/rbac/role.yaml")); (err == nil) != want || (want && !strings.Contains(string(role), "  - ships/status\n")) {
			t.Errorf("step %d (%s): config/rbac/role.yaml (want one: %v): %v\n%s", i, step.name, want, err, role)
		}
		if got := strings.Contains(string(crd), "strategy: Webhook"); got != want {
			t.Errorf("step %d (%s): the Ship CRD has a webhook conversion: %v, want %v", i, step.name, got, want)
		}
		if got := webhooksErr == nil; got != want {
			t.Errorf("step %d (%s): config/webhook/webhooks.yaml exists: %v, want %v", i, step.name, got, want)
		}
		if want {
			// A webhook called by URL: the manifest names the URL (and no
			// Service), the helper serves its path.
			manifest, err := os.ReadFile(filepath.Join(dir, "config/webhook/webhooks.yaml"))
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(manifest), "url: https://hooks.example.com:9443/mutate-ship\n") || strings.Count(string(manifest), "service:") != 1 {
				t.Errorf("step %d (%s): webhooks.yaml does not call mship by its URL and vship by the Service:\n%s", i, step.name, manifest)
			}
			helpers, err := os.ReadFile(filepath.Join(dir, "generated/controllers/fleet/v1/ship_webhooks.go"))
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(helpers), `webhook.WithPath("/mutate-ship")`) || !strings.Contains(string(helpers), "func RegisterShipDefaulter(") {
				t.Errorf("step %d (%s): no RegisterShipDefaulter serving /mutate-ship:\n%s", i, step.name, helpers)
			}
		}
		if err := <-scratchErr; err != nil {
			t.Fatalf("step %d (%s): from scratch: %v", i, step.name, err)
		}
		if diff := compareTrees(t, dir, fresh); diff != "" {
			t.Fatalf("step %d (%s): the regenerated tree differs from a generation from scratch:\n%s", i, step.name, diff)
		}
		if _, err := os.Stat(filepath.Join(dir, "internal/notes/doc.go")); err != nil {
			t.Fatalf("step %d (%s): a hand-written file is gone: %v", i, step.name, err)
		}
	}

	// A rerun on an unchanged API rewrites nothing: same bytes, same mtimes.
	before := mtimes(t, dir)
	if err := codegen.Run(t.Context(), codegen.Options{Dir: dir, APIPackages: []string{"./api/..."}, OutputPackage: "example.com/shipyard/generated", CRDDir: "config/crd", WebhookDir: "config/webhook", RBACDir: "config/rbac"}); err != nil {
		t.Fatal(err)
	}
	if after := mtimes(t, dir); after != before {
		t.Fatal("a rerun on an unchanged API touched files")
	}
}

// newModule writes a module that requires rein from this checkout, with
// files, and returns its folder.
func newModule(t *testing.T, module string, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	root := repoRoot(t)
	writeFile(t, dir, "go.mod", "module "+module+"\n\ngo 1.26.0\n\nrequire github.com/rein-k8s/rein v0.0.0\n\nreplace github.com/rein-k8s/rein => "+root+"\n")
	sum, err := os.ReadFile(filepath.Join(root, "go.sum"))
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, dir, "go.sum", string(sum))
	for name, content := range files {
		writeFile(t, dir, name, content)
	}
	// As the README says: rein-gen as a tool of the module, which also
	// requires what rein-gen's API loads need.
	goCmd(t, dir, "mod", "edit", "-tool", "github.com/rein-k8s/rein/codegen/cmd/rein-gen")
	goCmd(t, dir, "mod", "tidy")
	return dir
}

func writeFile(t *testing.T, dir, name, content string) {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func removeAll(t *testing.T, dir, name string) {
	t.Helper()
	if err := os.RemoveAll(filepath.Join(dir, name)); err != nil {
		t.Fatal(err)
	}
}

// generatedLine marks the files rein-gen writes.
var generatedLines = []string{"// Code generated by rein-gen. DO NOT EDIT.", "# Code generated by rein-gen. DO NOT EDIT."}

func isGenerated(content []byte) bool {
	for _, l := range generatedLines {
		if bytes.Contains(content, []byte(l)) {
			return true
		}
	}
	return false
}

// copyHandWritten copies every file of src that rein-gen did not write.
func copyHandWritten(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		content, err := os.ReadFile(path)
		if err != nil || isGenerated(content) {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		writeFile(t, dst, rel, string(content))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// compareTrees lists the files that differ between two trees (go.mod and
// go.sum aside: rein-gen may tidy them).
func compareTrees(t *testing.T, a, b string) string {
	t.Helper()
	read := func(root string) map[string]string {
		files := map[string]string{}
		err := filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			rel, _ := filepath.Rel(root, path)
			if rel == "go.mod" || rel == "go.sum" {
				return nil
			}
			content, err := os.ReadFile(path)
			files[rel] = string(content)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		return files
	}
	fa, fb := read(a), read(b)
	var diffs []string
	for name, content := range fa {
		other, ok := fb[name]
		switch {
		case !ok:
			diffs = append(diffs, "only after regenerating: "+name)
		case other != content:
			diffs = append(diffs, "differs: "+name)
		}
	}
	for name := range fb {
		if _, ok := fa[name]; !ok {
			diffs = append(diffs, "only from scratch: "+name)
		}
	}
	// Folders too: an empty folder left behind is a difference.
	for _, root := range []string{a, b} {
		_ = filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				if entries, _ := os.ReadDir(path); len(entries) == 0 {
					rel, _ := filepath.Rel(root, path)
					diffs = append(diffs, "empty folder: "+rel)
				}
			}
			return nil
		})
	}
	sort.Strings(diffs)
	return strings.Join(diffs, "\n")
}

// mtimes lists every file with its modification time.
func mtimes(t *testing.T, dir string) string {
	t.Helper()
	var b strings.Builder
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		b.WriteString(path + " " + info.ModTime().String() + "\n")
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// TestRollback: when the module's own code does not compile with the new
// output (a hand-written helper still uses a removed kind), rein-gen says
// whose code fails and leaves the tree exactly as it found it.
func TestRollback(t *testing.T) {
	if testing.Short() {
		t.Skip("generates and builds a module")
	}
	dir := newModule(t, "example.com/shipyard", map[string]string{
		"api/fleet/v1/doc.go":     fleetDoc,
		"api/fleet/v1/ship.go":    shipV1,
		"api/fleet/v1/harbor.go":  harborV1,
		"api/fleet/v1/helpers.go": "package v1\n\n// Berths counts the berths of harbors.\nfunc Berths(l *HarborList) (n int32) {\n\tfor _, h := range l.Items {\n\t\tn += h.Berths\n\t}\n\treturn n\n}\n",
	})
	opts := codegen.Options{Dir: dir, APIPackages: []string{"./api/..."}, OutputPackage: "example.com/shipyard/generated", CRDDir: "config/crd"}
	if err := codegen.Run(t.Context(), opts); err != nil {
		t.Fatal(err)
	}
	harbor, err := os.ReadFile(filepath.Join(dir, "api/fleet/v1/harbor.go"))
	if err != nil {
		t.Fatal(err)
	}
	removeAll(t, dir, "api/fleet/v1/harbor.go")
	before := mtimes(t, dir) + folders(t, dir)
	err = codegen.Run(t.Context(), opts)
	if err == nil || !strings.Contains(err.Error(), "module's own code does not compile") || !strings.Contains(err.Error(), "helpers.go") {
		t.Fatalf("got %v, want the module's own helpers.go named", err)
	}
	if after := mtimes(t, dir) + folders(t, dir); after != before {
		t.Fatalf("the tree changed:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	// Put the kind back: the tree is whole and the run succeeds.
	writeFile(t, dir, "api/fleet/v1/harbor.go", string(harbor))
	if err := codegen.Run(t.Context(), opts); err != nil {
		t.Fatal(err)
	}
	goCmd(t, dir, "vet", "./...")
}
