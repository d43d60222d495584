package start_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/utils/ptr"

	"github.com/rein-k8s/rein/internal/engine"
	testapi "github.com/rein-k8s/rein/internal/testapi/v1"
	"github.com/rein-k8s/rein/internal/testkit"
	"github.com/rein-k8s/rein/internal/testkit/factorytest"
	"github.com/rein-k8s/rein/internal/testkit/otlptest"
	"github.com/rein-k8s/rein/pkg/framework"
	"github.com/rein-k8s/rein/pkg/start"
	"github.com/rein-k8s/rein/pkg/testenv"
)

// TestTracingEndToEnd: a replica with tracing turned on by the standard
// OTEL_* variables, and a kube-apiserver whose tracing configuration
// points at the same in-process OTLP receiver. One trace holds the
// replica's reconcile of a key, its handler's span, the client span of the
// write the handler made, the apiserver's span of that write, and the
// replica's webhook server's span of the admission call the apiserver
// made for it (the webhook continues the apiserver's trace).
func TestTracingEndToEnd(t *testing.T) {
	recv, err := otlptest.Start(true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(recv.Stop)

	// The apiserver exports by OTLP gRPC to the receiver, sampling only
	// what its callers sampled, in batches every 100 ms (its SDK reads
	// OTEL_BSP_SCHEDULE_DELAY; the default is 5 s). The client is admin,
	// in system:masters, whose trace context the apiserver continues
	// (another user's it would only link).
	t.Setenv("OTEL_BSP_SCHEDULE_DELAY", "100")
	tracingConfig := filepath.Join(t.TempDir(), "tracing.yaml")
	if err := os.WriteFile(tracingConfig, fmt.Appendf(nil, "apiVersion: apiserver.config.k8s.io/v1\nkind: TracingConfiguration\nendpoint: %s\n", recv.GRPCAddr()), 0o600); err != nil {
		t.Fatal(err)
	}
	e, err := testenv.Start(testenv.Options{APIServerFlags: map[string][]string{"tracing-config-file": {tracingConfig}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := e.Stop(); err != nil {
			t.Error(err)
		}
	})
	admin := testkit.Admin(t, e)
	ns := newNamespace(t, admin)

	// The replica's tracing, from the environment NewOptions reads.
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", recv.GRPCURL())
	t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
	t.Setenv("OTEL_SERVICE_NAME", "rein-e2e")
	o := start.NewOptions()
	o.Config = e.Config()
	o.LeaseNamespace = ns
	o.IdentityBase = "tracer"
	o.LeaseDuration, o.RenewDeadline, o.RetryPeriod = 2*time.Second, 1500*time.Millisecond, 300*time.Millisecond
	o.MetricsBindAddress, o.HealthProbeBindAddress = "127.0.0.1:0", "127.0.0.1:0"
	s, hook, _, caPEM := webhookServerCA(t, "127.0.0.1:0")
	o.Webhook = s

	scheme := factorytest.Scheme(t, clientgoscheme.AddToScheme, testapi.AddToScheme)
	f, err := framework.NewFactory(e.Config(), scheme, framework.Options{Namespace: ns})
	if err != nil {
		t.Fatal(err)
	}
	c, err := engine.OpsOf(f).Controller(factorytest.ConfigMaps)
	if err != nil {
		t.Fatal(err)
	}
	c.AddHandler(t.Context(), "mark", func(ctx context.Context, key string, obj runtime.Object) (runtime.Object, error) {
		cm, ok := obj.(*corev1.ConfigMap)
		if !ok || cm.Annotations["marked"] != "" {
			return nil, nil
		}
		var out corev1.ConfigMap
		err := c.Client().Patch(ctx, cm.Namespace, cm.Name, types.MergePatchType, []byte(`{"metadata":{"annotations":{"marked":"yes"}}}`), metav1.PatchOptions{}, &out)
		return &out, err
	})
	_, stop, done := runNew(t, o, start.Group{LeaseName: testLease, Factories: []start.Starter{f}})
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})

	// The apiserver asks the replica's webhook about the ConfigMaps of ns.
	_, err = admin.AdmissionregistrationV1().ValidatingWebhookConfigurations().Create(t.Context(), &admissionregistrationv1.ValidatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: ns},
		Webhooks: []admissionregistrationv1.ValidatingWebhook{{
			Name:                    "configmaps.tracing.rein.dev",
			ClientConfig:            admissionregistrationv1.WebhookClientConfig{URL: ptr.To("https://" + s.Addr() + hook.Path), CABundle: caPEM},
			Rules:                   []admissionregistrationv1.RuleWithOperations{{Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create, admissionregistrationv1.Update}, Rule: admissionregistrationv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"configmaps"}}}},
			NamespaceSelector:       &metav1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/metadata.name": ns}},
			SideEffects:             ptr.To(admissionregistrationv1.SideEffectClassNone),
			AdmissionReviewVersions: []string{"v1"},
			TimeoutSeconds:          ptr.To[int32](10),
		}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = admin.AdmissionregistrationV1().ValidatingWebhookConfigurations().Delete(context.Background(), ns, metav1.DeleteOptions{})
	})
	// The configuration takes a moment to be used: until the webhook
	// refuses "refused", create and delete probes.
	eventually(t, "the apiserver calls the webhook", func() bool {
		_, err := admin.CoreV1().ConfigMaps(ns).Create(t.Context(), &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "refused"}}, metav1.CreateOptions{})
		if err == nil {
			_ = admin.CoreV1().ConfigMaps(ns).Delete(t.Context(), "refused", metav1.DeleteOptions{})
		}
		return err != nil && strings.Contains(err.Error(), "refused by the test")
	})
	if _, err := admin.CoreV1().ConfigMaps(ns).Create(t.Context(), &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "traced"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	key := ns + "/traced"
	var reconcile, handler, patch, apiserver, webhook otlptest.Span
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	spans, err := recv.Wait(ctx, func(spans []otlptest.Span) bool {
		byID := map[string]otlptest.Span{}
		for _, s := range spans {
			byID[s.SpanID] = s
		}
		reconcile, handler, patch, apiserver, webhook = otlptest.Span{}, otlptest.Span{}, otlptest.Span{}, otlptest.Span{}, otlptest.Span{}
		// The handler call that wrote (the write runs the chain again,
		// and that call writes nothing).
		for _, s := range spans {
			h := byID[s.ParentID]
			if s.Kind == "client" && h.Name == "handler mark" && h.Attrs["rein.key"] == key && byID[h.ParentID].Name == "reconcile configmaps" {
				patch, handler, reconcile = s, h, byID[h.ParentID]
			}
		}
		for _, s := range spans {
			if patch.SpanID != "" && s.ParentID == patch.SpanID && s.Service == "apiserver" {
				apiserver = s
			}
		}
		// The webhook's span descends from the apiserver's span of the
		// write (through the apiserver's own spans of admission).
		for _, s := range spans {
			if s.Service != "rein-e2e" || s.Kind != "server" || apiserver.SpanID == "" || s.TraceID != apiserver.TraceID {
				continue
			}
			for p := byID[s.ParentID]; p.SpanID != ""; p = byID[p.ParentID] {
				if p.SpanID == apiserver.SpanID {
					webhook = s
					break
				}
			}
		}
		return webhook.SpanID != ""
	})
	if err != nil {
		for _, s := range spans {
			t.Logf("span %s %q (%s, %s) parent %s trace %s %v", s.SpanID, s.Name, s.Service, s.Kind, s.ParentID, s.TraceID, s.Attrs)
		}
		t.Fatalf("no trace of the reconcile of %s reaching the apiserver and the webhook (reconcile %q, handler %q, patch %q, apiserver %q): %v",
			key, reconcile.SpanID, handler.SpanID, patch.SpanID, apiserver.SpanID, err)
	}
	if reconcile.ParentID != "" || reconcile.Service != "rein-e2e" {
		t.Errorf("the reconcile span has parent %q and service %q, want a root of rein-e2e", reconcile.ParentID, reconcile.Service)
	}
	for k, v := range map[string]string{"rein.controller": "configmaps", "rein.result": "success", "rein.lease": ns + "/" + testLease, "rein.fencing_token": ns + "/" + testLease + "/" + reconcile.Attrs["rein.term"]} {
		if reconcile.Attrs[k] != v {
			t.Errorf("the reconcile span's %s is %q, want %q", k, reconcile.Attrs[k], v)
		}
	}
	if handler.Attrs["rein.result"] != "success" || handler.Attrs["rein.handler"] != "mark" {
		t.Errorf("the handler span's attributes: %v", handler.Attrs)
	}
	if !strings.HasPrefix(apiserver.Name, "PATCH ") || apiserver.Kind != "server" {
		t.Errorf("the apiserver's span of the write is %q (%s), want its PATCH server span", apiserver.Name, apiserver.Kind)
	}
	if webhook.Name != "POST "+hook.Path {
		t.Errorf("the webhook's span is %q, want \"POST %s\"", webhook.Name, hook.Path)
	}
	for _, s := range []otlptest.Span{handler, patch, apiserver, webhook} {
		if s.TraceID != reconcile.TraceID {
			t.Errorf("span %q is in trace %s, the reconcile in %s", s.Name, s.TraceID, reconcile.TraceID)
		}
	}
}

// TestTracingMistakesNamed: a malformed OTEL_* variable fails New with
// the replica's other mistakes, naming the variable.
func TestTracingMistakesNamed(t *testing.T) {
	t.Setenv("OTEL_TRACES_EXPORTER", "otlp")
	t.Setenv("OTEL_TRACES_SAMPLER", "parentbased_traceidratio")
	t.Setenv("OTEL_TRACES_SAMPLER_ARG", "one percent")
	o := testOptions(t, "default")
	o.DrainGrace = -time.Second
	_, err := start.New(o, start.Group{LeaseName: testLease, Factories: []start.Starter{newFactory(t, "default")}})
	for _, want := range []string{`OTEL_TRACES_SAMPLER_ARG="one percent"`, "--drain-grace"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("New: %v, want it to name %s", err, want)
		}
	}
}
