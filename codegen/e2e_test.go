package codegen_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"

	"github.com/rein-k8s/rein/codegen"
	"github.com/rein-k8s/rein/pkg/testenv"
)

// The API of the module the test creates: a namespaced kind with a status
// and validation markers, and a cluster-scoped kind.
var fleetAPI = map[string]string{
	"api/fleet/v1/doc.go": `// Package v1 is fleet.example.com/v1.
//
// +k8s:deepcopy-gen=package
// +groupName=fleet.example.com
package v1
`,
	"api/fleet/v1/types.go": `package v1

import metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

// Ship sails.
//
// +genclient
// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
type Ship struct {
	metav1.TypeMeta   ` + "`json:\",inline\"`" + `
	metav1.ObjectMeta ` + "`json:\"metadata,omitempty\"`" + `

	Spec   ShipSpec   ` + "`json:\"spec\"`" + `
	Status ShipStatus ` + "`json:\"status,omitempty\"`" + `
}

// ShipSpec is the ship wanted.
type ShipSpec struct {
	// +kubebuilder:validation:Minimum=1
	Crew int32 ` + "`json:\"crew\"`" + `
}

// ShipStatus is the ship seen.
type ShipStatus struct {
	Seen bool ` + "`json:\"seen,omitempty\"`" + `
}

// Gizmo is a cluster-scoped kind whose plural is irregular (gizmoes), so
// the clientset, the CRD and the controllers must agree on it.
//
// +genclient
// +genclient:nonNamespaced
// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Cluster
type Gizmo struct {
	metav1.TypeMeta   ` + "`json:\",inline\"`" + `
	metav1.ObjectMeta ` + "`json:\"metadata,omitempty\"`" + `
}
`,
	"main.go": `package main

import (
	"context"
	"os"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/rein-k8s/rein/pkg/start"

	fleetv1 "example.com/m/api/fleet/v1"
	"example.com/m/generated/clientset/versioned"
	"example.com/m/generated/controllers/fleet"
)

func main() {
	cfg, err := clientcmd.BuildConfigFromFlags("", os.Args[1])
	if err != nil {
		panic(err)
	}
	ctx := context.Background()
	f := fleet.NewFactoryFromConfigOrDie(cfg)
	ships := f.Fleet().V1().Ship()
	ships.OnChange(ctx, "see", func(ctx context.Context, key string, s *fleetv1.Ship) (*fleetv1.Ship, error) {
		if s == nil || s.Status.Seen {
			return s, nil
		}
		s.Status.Seen = true
		return ships.UpdateStatus(ctx, s)
	})
	gizmos := f.Fleet().V1().Gizmo()
	gizmos.OnChange(ctx, "label", func(ctx context.Context, key string, h *fleetv1.Gizmo) (*fleetv1.Gizmo, error) {
		if h == nil || h.Labels["seen"] == "yes" {
			return h, nil
		}
		h.Labels = map[string]string{"seen": "yes"}
		return gizmos.Update(ctx, h)
	})
	// The clientset of code-generator reaches the same resources.
	if _, err := versioned.NewForConfigOrDie(cfg).FleetV1().Gizmoes().List(ctx, metav1.ListOptions{}); err != nil {
		panic(err)
	}
	// One process, no election: workers run as soon as the caches have
	// synced (SIGTERM drains them and exits).
	opts := start.NewOptions()
	opts.Config = cfg
	opts.LeaderElect = false
	opts.MetricsBindAddress, opts.HealthProbeBindAddress = "0", "0"
	if err := start.Run(ctx, opts, start.Group{Factories: []start.Starter{f}}); err != nil {
		panic(err)
	}
	select {}
}
`,
}

func repoRoot(t *testing.T) string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Dir(filepath.Dir(file))
}

// TestGenerateBuildAndRunAModule: a fresh module with one namespaced and
// one cluster-scoped kind is generated, built and run against a real
// apiserver with the generated CRDs; its OnChange handlers reconcile, and
// the CRD's schema refuses an invalid object at the apiserver.
func TestGenerateBuildAndRunAModule(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a module")
	}
	ctx := t.Context()
	dir := t.TempDir()
	root := repoRoot(t)
	// rein comes from this checkout; everything else from the module
	// cache (rein's go.sum lists it all).
	goMod := "module example.com/m\n\ngo 1.26.0\n\nrequire github.com/rein-k8s/rein v0.0.0\n\nreplace github.com/rein-k8s/rein => " + root + "\n"
	files := map[string]string{"go.mod": goMod}
	for k, v := range fleetAPI {
		if k != "main.go" { // it imports what is not generated yet
			files[k] = v
		}
	}
	for name, content := range files {
		path := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	sum, err := os.ReadFile(filepath.Join(root, "go.sum"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "go.sum"), sum, 0o644); err != nil {
		t.Fatal(err)
	}

	goCmd(t, dir, "mod", "tidy")
	start := time.Now()
	var log strings.Builder
	err = codegen.Run(ctx, codegen.Options{
		Dir: dir, APIPackages: []string{"./api/fleet/v1"}, OutputPackage: "example.com/m/generated",
		CRDDir: "config/crd", Log: &log,
	})
	if err != nil {
		t.Fatalf("generate: %v\n%s", err, log.String())
	}
	t.Logf("generated in %v", time.Since(start).Round(time.Millisecond))
	// The first run tidies go.mod, and says so in its own words: no
	// fragment of the go command's message, no absolute path.
	if !strings.Contains(log.String(), "rein-gen: go.mod lacks what the generated code imports (a first run): running `go mod tidy` in the module's root\n") ||
		strings.Contains(log.String(), "go: ") || strings.Contains(log.String(), dir) {
		t.Errorf("the first run's log:\n%s", log.String())
	}
	for _, want := range []string{
		"api/fleet/v1/zz_generated.deepcopy.go", "api/fleet/v1/zz_generated_register.go", "api/fleet/v1/zz_generated_list_types.go",
		"generated/clientset/versioned/clientset.go", "generated/listers/fleet/v1/ship.go",
		"generated/informers/externalversions/factory.go", "generated/controllers/fleet/factory.go",
		"generated/controllers/fleet/v1/ship.go", "generated/controllers/fleet/v1/gizmo.go",
		"config/crd/fleet.example.com_ships.yaml", "config/crd/fleet.example.com_gizmoes.yaml",
	} {
		if _, err := os.Stat(filepath.Join(dir, want)); err != nil {
			t.Errorf("not generated: %s", want)
		}
	}

	if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte(fleetAPI["main.go"]), 0o644); err != nil {
		t.Fatal(err)
	}
	goCmd(t, dir, "mod", "tidy")
	goCmd(t, dir, "vet", "./...")
	goCmd(t, dir, "build", "-o", "app", ".")

	env, err := testenv.Start(testenv.Options{CRDDirs: []string{filepath.Join(dir, "config/crd")}})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = env.Stop() }()
	app := exec.Command(filepath.Join(dir, "app"), env.KubeconfigPath())
	var appLog strings.Builder
	app.Stdout, app.Stderr = &appLog, &appLog
	if err := app.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = app.Process.Kill()
		_ = app.Wait()
		if t.Failed() {
			t.Logf("app log:\n%s", appLog.String())
		}
	}()

	dyn := dynamic.NewForConfigOrDie(env.Config())
	ships := dyn.Resource(schema.GroupVersionResource{Group: "fleet.example.com", Version: "v1", Resource: "ships"}).Namespace("default")
	gizmos := dyn.Resource(schema.GroupVersionResource{Group: "fleet.example.com", Version: "v1", Resource: "gizmoes"})
	ship := func(name string, crew int64) *unstructured.Unstructured {
		return &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "fleet.example.com/v1", "kind": "Ship",
			"metadata": map[string]any{"name": name}, "spec": map[string]any{"crew": crew},
		}}
	}
	if _, err := ships.Create(ctx, ship("bounty", 0), metav1.CreateOptions{}); !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "spec.crew") {
		t.Fatalf("a ship with crew 0: %v, want the CRD schema to refuse spec.crew", err)
	}
	if _, err := ships.Create(ctx, ship("endeavour", 80), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := gizmos.Create(ctx, &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "fleet.example.com/v1", "kind": "Gizmo", "metadata": map[string]any{"name": "plymouth"},
	}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		s, err := ships.Get(ctx, "endeavour", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		h, err := gizmos.Get(ctx, "plymouth", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		seen, _, _ := unstructured.NestedBool(s.Object, "status", "seen")
		if seen && h.GetLabels()["seen"] == "yes" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not reconciled: ship status seen=%v, gizmo labels %v", seen, h.GetLabels())
		}
		time.Sleep(50 * time.Millisecond)
	}

	// Generating again changes nothing.
	before := snapshot(t, filepath.Join(dir, "generated"))
	if err := codegen.Run(context.Background(), codegen.Options{
		Dir: dir, APIPackages: []string{"./api/fleet/v1"}, OutputPackage: "example.com/m/generated", CRDDir: "config/crd",
	}); err != nil {
		t.Fatal(err)
	}
	if after := snapshot(t, filepath.Join(dir, "generated")); after != before {
		t.Fatal("a second run changed the generated files")
	}
}

func goCmd(t *testing.T, dir string, args ...string) {
	t.Helper()
	cmd := exec.Command("go", args...)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

func snapshot(t *testing.T, dir string) string {
	var b strings.Builder
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		content, err := os.ReadFile(path)
		b.WriteString(path + "\n" + string(content))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}
