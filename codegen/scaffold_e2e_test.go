package codegen_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/restmapper"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"

	"github.com/rein-k8s/rein/codegen/internal/scaffold"
	"github.com/rein-k8s/rein/pkg/testenv"
)

// TestScaffoldAProject: in an empty folder, init and create api write a
// project that generates, builds and passes its own make test; create api
// run twice changes nothing the second time, and skips a file the user
// changed; make run against a real apiserver reconciles an object; and
// deploy/ (and with its fencing component) builds with kustomize into objects the
// apiserver accepts; and the operator runs on the RBAC it generated
// (runOnTheGeneratedRBAC).
func TestScaffoldAProject(t *testing.T) {
	if testing.Short() {
		t.Skip("generates, builds and tests a project")
	}
	ctx := t.Context()
	root := repoRoot(t)
	testbin := os.Getenv("REIN_TESTBIN")
	if testbin == "" {
		testbin = filepath.Join(root, "bin") // make testbin's
	}
	if _, err := os.Stat(filepath.Join(testbin, "kube-apiserver")); err != nil && os.Getenv("KUBEBUILDER_ASSETS") == "" {
		t.Skipf("the project's make test needs kube-apiserver: none in %s (make testbin, or set REIN_TESTBIN)", testbin)
	}
	dir := t.TempDir()
	// The project's modules are rein's: rein's go.sum has them all, so
	// nothing is looked up but what the module cache holds.
	sum, err := os.ReadFile(filepath.Join(root, "go.sum"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "go.sum"), sum, 0o644); err != nil {
		t.Fatal(err)
	}
	begin := time.Now()
	var log bytes.Buffer
	if err := scaffold.Init(ctx, scaffold.InitOptions{Dir: dir, Module: "example.com/guestbook", ReinReplace: root, Log: &log}); err != nil {
		t.Fatalf("init: %v\n%s", err, log.String())
	}
	create := func(o scaffold.APIOptions) string {
		t.Helper()
		log.Reset()
		o.Dir, o.Log = dir, &log
		if err := scaffold.CreateAPI(ctx, o); err != nil {
			t.Fatalf("create api %s %s: %v\n%s", o.Kind, o.Version, err, log.String())
		}
		return log.String()
	}
	guestbook := scaffold.APIOptions{Group: "webapp", Version: "v1", Kind: "Guestbook", Webhooks: []string{"validating", "defaulting"}, Conversion: true}
	create(guestbook)
	before := snapshot(t, dir)
	if out := create(guestbook); !strings.Contains(out, "create api: nothing to do") || snapshot(t, dir) != before {
		t.Errorf("a second create api of the same kind changed files, or said:\n%s", out)
	}
	// The user changes setup.go; a second kind leaves it alone and says
	// what it lacks.
	setup := filepath.Join(dir, "setup.go")
	original, err := os.ReadFile(setup)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(setup, append(bytes.Clone(original), "// mine\n"...), 0o644); err != nil {
		t.Fatal(err)
	}
	gizmo := scaffold.APIOptions{Group: "webapp", Version: "v1", Kind: "Gizmo", ClusterScoped: true}
	if out := create(gizmo); !strings.Contains(out, "skipped setup.go: you changed it since rein-gen wrote it; rein-gen's version adds these lines:\n\t\twebappcontroller.RegisterGizmo(") {
		t.Errorf("create api with setup.go changed said:\n%s", out)
	}
	// Put back as rein-gen wrote it, it is brought up to date by the next
	// command: a second version of Guestbook, converted through v1, whose
	// make generate makes the project build.
	if err := os.WriteFile(setup, original, 0o644); err != nil {
		t.Fatal(err)
	}
	guestbookV2 := scaffold.APIOptions{Group: "webapp", Version: "v2", Kind: "Guestbook", Conversion: true, Generate: true}
	if out := create(guestbookV2); !strings.Contains(out, "updated setup.go") {
		t.Errorf("create api of v2 said:\n%s", out)
	}
	t.Logf("init and create api (3 kinds, one make generate) in %v", time.Since(begin).Round(time.Millisecond))
	for _, want := range []string{"generated/controllers/webapp/conversion.go", "deploy/rbac.yaml", "deploy/webhook/webhooks.yaml",
		"deploy/crd/webapp.example.com_gizmoes.yaml", "api/webapp/v2/zz_generated.deepcopy.go"} {
		if _, err := os.Stat(filepath.Join(dir, want)); err != nil {
			t.Errorf("make generate wrote no %s", want)
		}
	}

	// The project's own make test: unit and integration tests.
	makeCmd := func(ctx context.Context, env []string, args ...string) *exec.Cmd {
		cmd := exec.CommandContext(ctx, "make", args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), env...)
		return cmd
	}
	out, err := makeCmd(ctx, []string{"REIN_TESTBIN=" + testbin}, "test", "TEST_FLAGS=-count=1 -v").CombinedOutput()
	if err != nil {
		t.Fatalf("make test: %v\n%s", err, out)
	}
	for _, want := range []string{"--- PASS: TestGuestbookReconcile", "--- PASS: TestGizmoReconcile", "--- PASS: TestGuestbookReplica", "--- PASS: TestGizmoReplica"} {
		if !bytes.Contains(out, []byte(want)) {
			t.Errorf("make test ran no %s:\n%s", strings.TrimPrefix(want, "--- PASS: "), out)
		}
	}
	t.Logf("init → make test green in %v", time.Since(begin).Round(time.Millisecond))

	// make run against a real apiserver: one replica reconciles a Guestbook.
	env, err := testenv.Start(testenv.Options{CRDDirs: []string{filepath.Join(dir, "deploy/crd")}, Audit: true})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = env.Stop() }()
	var runLog bytes.Buffer
	run := makeCmd(context.Background(), []string{"KUBECONFIG=" + env.KubeconfigPath()}, "run", "RUN_ARGS=--metrics-bind-address=0 --health-probe-bind-address=0")
	run.Stdout, run.Stderr = &runLog, &runLog
	run.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // make, go run and the program: stopped together
	if err := run.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- run.Wait() }()
	// stopRun stops make run as Ctrl-C would stop it: SIGTERM to make, go
	// run and the program, which drains and releases its Lease; then waits
	// until every process of the group is gone.
	var stopOnce sync.Once
	stopRun := func() {
		stopOnce.Do(func() {
			pgid := run.Process.Pid
			_ = syscall.Kill(-pgid, syscall.SIGTERM)
			deadline := time.After(30 * time.Second)
			select {
			case <-exited:
			case <-deadline:
			}
			for syscall.Kill(-pgid, 0) == nil {
				select {
				case <-deadline:
					_ = syscall.Kill(-pgid, syscall.SIGKILL)
					t.Error("make run did not stop within 30s of SIGTERM")
				case <-time.After(50 * time.Millisecond):
				}
			}
		})
	}
	defer func() {
		stopRun()
		if t.Failed() {
			t.Logf("make run:\n%s", runLog.String())
		}
	}()
	dyn := dynamic.NewForConfigOrDie(env.Config())
	guestbooks := dyn.Resource(schema.GroupVersionResource{Group: "webapp.example.com", Version: "v1", Resource: "guestbooks"}).Namespace("default")
	if _, err := guestbooks.Create(ctx, &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "webapp.example.com/v1", "kind": "Guestbook", "metadata": map[string]any{"name": "first"}, "spec": map[string]any{"foo": "bar"},
	}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(3 * time.Minute); ; { // go run builds first
		u, err := guestbooks.Get(ctx, "first", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		var status struct {
			Conditions []metav1.Condition `json:"conditions"`
		}
		raw, _, _ := unstructured.NestedFieldCopy(u.Object, "status")
		if m, ok := raw.(map[string]any); ok {
			_ = runtimeFromUnstructured(m, &status)
		}
		if meta.IsStatusConditionTrue(status.Conditions, "Ready") {
			break
		}
		select {
		case err := <-exited:
			exited <- err // for stopRun
			t.Fatalf("make run exited before reconciling: %v", err)
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("make run did not make the Guestbook Ready within 3 minutes")
		}
	}
	stopRun()

	// kubectl kustomize deploy (and with deploy/fencing): kustomize builds both,
	// and the apiserver takes every object they hold.
	base := kustomize(t, filepath.Join(dir, "deploy"))
	want := []string{
		"Namespace//guestbook-system", "ServiceAccount/guestbook-system/guestbook", "ClusterRole//guestbook", "Role/guestbook-system/guestbook",
		"Deployment/guestbook-system/guestbook", "PodDisruptionBudget/guestbook-system/guestbook", "Service/guestbook-system/guestbook-metrics",
		"Service/guestbook-system/guestbook-webhook", "CustomResourceDefinition//guestbooks.webapp.example.com",
		"CustomResourceDefinition//gizmoes.webapp.example.com", "ValidatingWebhookConfiguration//guestbook", "MutatingWebhookConfiguration//guestbook",
	}
	var got []string
	for _, u := range base {
		got = append(got, u.GetKind()+"/"+u.GetNamespace()+"/"+u.GetName())
		if u.GetKind() == "Deployment" {
			replicas, _, _ := unstructured.NestedInt64(u.Object, "spec", "replicas")
			spread, _, _ := unstructured.NestedSlice(u.Object, "spec", "template", "spec", "topologySpreadConstraints")
			if replicas != 3 || len(spread) == 0 {
				t.Errorf("the Deployment: %d replicas, %d spread constraints", replicas, len(spread))
			}
		}
	}
	for _, w := range want {
		if !slices.Contains(got, w) {
			t.Errorf("kustomize build deploy has no %s; it has %v", w, got)
		}
	}
	// The fencing component, from an overlay as the user would opt in.
	overlay := filepath.Join(dir, "fenced")
	if err := os.MkdirAll(overlay, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(overlay, "kustomization.yaml"), []byte("resources: [../deploy]\ncomponents: [../deploy/fencing]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	fenced := kustomize(t, overlay)
	fencing := 0
	var deployArgs []string
	for _, u := range fenced {
		switch u.GetKind() {
		case "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding":
			fencing++
		case "Deployment":
			containers, _, _ := unstructured.NestedSlice(u.Object, "spec", "template", "spec", "containers")
			if len(containers) > 0 {
				args, _, _ := unstructured.NestedStringSlice(containers[0].(map[string]any), "args")
				deployArgs = args
			}
			if !slices.Contains(deployArgs, "--server-side-fencing") {
				t.Errorf("with the fencing component, the Deployment runs without --server-side-fencing: %v", deployArgs)
			}
		}
	}
	if fencing != 2 || len(fenced) != len(base)+2 {
		t.Errorf("with the fencing component: %d objects, %d of the policy; the base %d", len(fenced), fencing, len(base))
	}
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(discovery.NewDiscoveryClientForConfigOrDie(env.Config())))
	for _, u := range fenced {
		m, err := mapper.RESTMapping(u.GroupVersionKind().GroupKind(), u.GroupVersionKind().Version)
		if err != nil {
			t.Fatalf("%s: %v", u.GetKind(), err)
		}
		data, err := u.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		var ri dynamic.ResourceInterface = dyn.Resource(m.Resource)
		if m.Scope.Name() == meta.RESTScopeNameNamespace {
			ri = dyn.Resource(m.Resource).Namespace(u.GetNamespace())
		}
		if _, err := ri.Patch(ctx, u.GetName(), types.ApplyPatchType, data, metav1.PatchOptions{FieldManager: "test", Force: ptrTo(true)}); err != nil {
			t.Errorf("apply %s %s/%s: %v", u.GetKind(), u.GetNamespace(), u.GetName(), err)
		}
	}
	if t.Failed() {
		return
	}

	// The replicas run as deployed, on the RBAC make generate printed.
	runOnTheGeneratedRBAC(t, env, dir, deployArgs)
}

// kustomize builds the kustomization in dir as kubectl kustomize does.
func kustomize(t *testing.T, dir string) []*unstructured.Unstructured {
	t.Helper()
	resMap, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		t.Fatalf("kustomize build %s: %v", dir, err)
	}
	var out []*unstructured.Unstructured
	for _, r := range resMap.Resources() {
		data, err := r.MarshalJSON() // JSON's numbers, as client-go's
		if err != nil {
			t.Fatal(err)
		}
		u := &unstructured.Unstructured{}
		if err := u.UnmarshalJSON(data); err != nil {
			t.Fatal(err)
		}
		out = append(out, u)
	}
	if len(out) == 0 {
		t.Fatalf("kustomize build %s: no objects", dir)
	}
	return out
}

func runtimeFromUnstructured(m map[string]any, into any) error {
	if m == nil {
		return errors.New("no status")
	}
	return runtime.DefaultUnstructuredConverter.FromUnstructured(m, into)
}
