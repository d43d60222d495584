package readme

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"

	"github.com/rein-k8s/rein/internal/certs"
	"github.com/rein-k8s/rein/internal/testlock"
)

// TestReadmeWebhooksSection runs the README's "Webhooks" section as a
// user would, after the files and commands of "Generate a controller for
// your CRD" (it continues that module): rein-gen writes the typed
// validator helper, the conversion and the manifests; the replica serves
// them at 127.0.0.1:9443 with a certificate in certs/ (cert-manager's
// place in a cluster), and the generated configurations and CRD
// conversion are registered with URL endpoints there.
func TestReadmeWebhooksSection(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a module and runs it")
	}
	root := repoRoot(t)
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	var blocks []block
	for _, b := range section(t, string(readme), "Generate a controller for your CRD") {
		if b.kind != "replica" {
			blocks = append(blocks, b)
		}
	}
	blocks = append(blocks, section(t, string(readme), "Webhooks")...)
	testlock.Lock(t, testlock.DefaultPorts)

	env, userEnv := userMachine(t, root)
	cwd := t.TempDir()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()

	var replica *exec.Cmd
	var replicaLog syncBuffer
	for _, b := range blocks {
		switch b.kind {
		case "skip":
		case "file":
			path := filepath.Join(cwd, filepath.FromSlash(b.arg))
			if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, []byte(b.body), 0o644); err != nil {
				t.Fatal(err)
			}
		case "run":
			cwd = runBlock(t, b, cwd, userEnv)
		case "replica":
			lines := strings.Split(strings.TrimSpace(b.body), "\n")
			cwd = runBlock(t, block{kind: "run", body: strings.Join(lines[:len(lines)-1], "\n"), line: b.line}, cwd, userEnv)
			// What a cluster provides: the CRDs and configurations applied,
			// a certificate for the address the apiserver dials.
			ca, err := certs.NewCA("readme", time.Hour, time.Now())
			if err != nil {
				t.Fatal(err)
			}
			certPEM, keyPEM, err := ca.Issue([]string{"127.0.0.1"}, time.Hour, time.Now())
			if err != nil {
				t.Fatal(err)
			}
			if err := os.MkdirAll(filepath.Join(cwd, "certs"), 0o700); err != nil {
				t.Fatal(err)
			}
			for name, content := range map[string][]byte{"tls.crt": certPEM, "tls.key": keyPEM} {
				if err := os.WriteFile(filepath.Join(cwd, "certs", name), content, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			if err := env.InstallCRDs(filepath.Join(cwd, "config", "crd")); err != nil {
				t.Fatalf("the CRDs rein-gen wrote: %v", err)
			}
			if err := env.InstallWebhooks(ctx, "https://127.0.0.1:9443", ca.CertPEM, filepath.Join(cwd, "config", "webhook", "webhooks.yaml")); err != nil {
				t.Fatalf("the webhooks rein-gen wrote: %v", err)
			}
			replica = exec.Command("bash", "-c", "exec "+lines[len(lines)-1])
			replica.Dir, replica.Env = cwd, userEnv
			replica.Stdout, replica.Stderr = &replicaLog, &replicaLog
			if err := replica.Start(); err != nil {
				t.Fatal(err)
			}
		}
	}
	if replica == nil {
		t.Fatal("the Webhooks section starts no replica")
	}
	defer func() {
		if replica.ProcessState == nil {
			_ = replica.Process.Kill()
			_ = replica.Wait()
		}
		if t.Failed() {
			t.Logf("replica log:\n%s", replicaLog.String())
		}
	}()

	dyn := dynamic.NewForConfigOrDie(env.Config())
	ships := func(version string) dynamic.ResourceInterface {
		return dyn.Resource(schema.GroupVersionResource{Group: "fleet.example.com", Version: version, Resource: "ships"}).Namespace("default")
	}
	v2Ship := func(name string, size int64, captain string) *unstructured.Unstructured {
		crew := map[string]any{"size": size}
		if captain != "" {
			crew["captain"] = captain
		}
		return &unstructured.Unstructured{Object: map[string]any{"apiVersion": "fleet.example.com/v2", "kind": "Ship",
			"metadata": map[string]any{"name": name}, "spec": map[string]any{"crew": crew}}}
	}
	// The replica serves once it has started: the first dry run that
	// passes says so.
	for {
		_, err := ships("v2").Create(ctx, v2Ship("probe", 1, ""), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		if err == nil {
			break
		}
		if ctx.Err() != nil || replica.ProcessState != nil {
			t.Fatalf("the webhooks never answered: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}

	// The validator's rule, with its message.
	_, err = ships("v2").Create(ctx, v2Ship("ark", 20, ""), metav1.CreateOptions{})
	if err == nil || !strings.Contains(err.Error(), "spec.crew.captain: a crew of more than 10 needs a captain") {
		t.Fatalf("a crew of 20 without a captain: %v, want the validator's denial", err)
	}
	// v2 written, v1 read: the captain rides in an annotation and comes
	// back.
	if _, err := ships("v2").Create(ctx, v2Ship("beagle", 20, "FitzRoy"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	asV1, err := ships("v1").Get(ctx, "beagle", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if crew, _, _ := unstructured.NestedInt64(asV1.Object, "spec", "crew"); crew != 20 || asV1.GetAnnotations()["fleet.example.com/captain"] != "FitzRoy" {
		t.Fatalf("the v2 Ship read as v1: %v", asV1.Object)
	}
	// v1 written, v2 read.
	v1 := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "fleet.example.com/v1", "kind": "Ship",
		"metadata": map[string]any{"name": "endeavour"}, "spec": map[string]any{"crew": int64(5)}}}
	if _, err := ships("v1").Create(ctx, v1, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// The handler, in v2, marks both seen; v2 reads show it.
	for _, name := range []string{"beagle", "endeavour"} {
		for {
			got, err := ships("v2").Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			size, _, _ := unstructured.NestedInt64(got.Object, "spec", "crew", "size")
			captain, _, _ := unstructured.NestedString(got.Object, "spec", "crew", "captain")
			if want := map[string]int64{"beagle": 20, "endeavour": 5}[name]; size != want || (name == "beagle") != (captain == "FitzRoy") {
				t.Fatalf("%s read as v2: %v", name, got.Object)
			}
			if seen, _, _ := unstructured.NestedBool(got.Object, "status", "seen"); seen {
				break
			}
			if ctx.Err() != nil {
				t.Fatalf("the handler did not mark %s seen", name)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}

	if err := replica.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := replica.Wait(); err != nil {
		t.Fatalf("after SIGTERM: %v, want exit 0", err)
	}
}
