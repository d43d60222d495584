package readme

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"

	"github.com/rein-k8s/rein/internal/certs"
)

// webhooksBefore provides what a cluster would for the webhooks page's
// replica: a certificate in certs/ for the address the apiserver dials
// (cert-manager's job in a cluster), and the configurations rein-gen
// wrote, registered with URL endpoints at 127.0.0.1:9443 (a Service's
// job).
func webhooksBefore(t *testing.T, r *pageRun) {
	ca, err := certs.NewCA("readme", time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	certPEM, keyPEM, err := ca.Issue([]string{"127.0.0.1"}, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(r.cwd, "certs"), 0o700); err != nil {
		t.Fatal(err)
	}
	for name, content := range map[string][]byte{"tls.crt": certPEM, "tls.key": keyPEM} {
		if err := os.WriteFile(filepath.Join(r.cwd, "certs", name), content, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.env.InstallWebhooks(r.ctx, "https://127.0.0.1:9443", ca.CertPEM, filepath.Join(r.cwd, "config", "webhook", "webhooks.yaml")); err != nil {
		t.Fatalf("the webhooks rein-gen wrote: %v", err)
	}
}

// webhooksReady: the validator denies with its message, Ships written in
// one version read back in the other, and the handler, in v2, marks
// Ships of both versions seen.
func webhooksReady(t *testing.T, r *pageRun) {
	dyn := dynamic.NewForConfigOrDie(r.env.Config())
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
	// /readyz waits for the webhook server; the apiserver may still need
	// a moment to reach it: the first dry run that passes says so.
	for {
		_, err := ships("v2").Create(r.ctx, v2Ship("probe", 1, ""), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		if err == nil {
			break
		}
		if r.ctx.Err() != nil {
			t.Fatalf("the webhooks never answered: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}

	// The validator's rule, with its message.
	_, err := ships("v2").Create(r.ctx, v2Ship("ark", 20, ""), metav1.CreateOptions{})
	if err == nil || !strings.Contains(err.Error(), "spec.crew.captain: a crew of more than 10 needs a captain") {
		t.Fatalf("a crew of 20 without a captain: %v, want the validator's denial", err)
	}
	// v2 written, v1 read: the captain rides in an annotation and comes
	// back.
	if _, err := ships("v2").Create(r.ctx, v2Ship("beagle", 20, "FitzRoy"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	asV1, err := ships("v1").Get(r.ctx, "beagle", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if crew, _, _ := unstructured.NestedInt64(asV1.Object, "spec", "crew"); crew != 20 || asV1.GetAnnotations()["fleet.example.com/captain"] != "FitzRoy" {
		t.Fatalf("the v2 Ship read as v1: %v", asV1.Object)
	}
	// v1 written, v2 read.
	if _, err := ships("v1").Create(r.ctx, ship("endeavour", 5), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// The handler, in v2, marks both seen; v2 reads show it.
	for _, name := range []string{"beagle", "endeavour"} {
		for {
			got, err := ships("v2").Get(r.ctx, name, metav1.GetOptions{})
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
			if r.ctx.Err() != nil {
				t.Fatalf("the handler did not mark %s seen", name)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}
