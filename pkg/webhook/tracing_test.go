package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/rein-k8s/rein/internal/testkit"
	"github.com/rein-k8s/rein/internal/tracing"
)

// TestServeContinuesTheCallersTrace: served with a tracer provider in its
// context (pkg/start's, with tracing on), a webhook request that carries
// traceparent is a server span of that trace, named after the hook's path,
// and the validator's context carries it; without one, nothing is traced.
func TestServeContinuesTheCallersTrace(t *testing.T) {
	spans := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(spans))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	seen := make(chan trace.SpanContext, 4)
	add := func(s *Server) (Hook, error) {
		return Validating(s, coreScheme(t), func(ctx context.Context, old, obj *corev1.ConfigMap) (Warnings, error) {
			seen <- trace.SpanContextFromContext(ctx)
			return nil, nil
		})
	}
	var hook Hook
	traced := startServerIn(t, tracing.WithProvider(context.Background(), tp), func(s *Server) {
		var err error
		if hook, err = add(s); err != nil {
			t.Fatal(err)
		}
	})
	_, plain := serveHook(t, add)

	// The apiserver's span of a write, as its webhook client sends it.
	caller := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: trace.TraceID{1, 2, 3}, SpanID: trace.SpanID{4, 5, 6}, TraceFlags: trace.FlagsSampled, Remote: true,
	})
	send := func(ts *testServer) {
		t.Helper()
		req := &admissionv1.AdmissionRequest{UID: "u", Kind: configMapKind, Operation: admissionv1.Create, Namespace: "ns", Name: "x",
			Object: runtime.RawExtension{Raw: mustJSON(t, &corev1.ConfigMap{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"}})}}
		in := admissionv1.AdmissionReview{Request: req}
		in.APIVersion, in.Kind = "admission.k8s.io/v1", "AdmissionReview"
		body, err := json.Marshal(&in)
		if err != nil {
			t.Fatal(err)
		}
		hr, err := http.NewRequest(http.MethodPost, ts.url(hook.Path), bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		hr.Header.Set("Content-Type", "application/json")
		tracing.Propagator.Inject(trace.ContextWithRemoteSpanContext(context.Background(), caller), propagation.HeaderCarrier(hr.Header))
		resp, err := ts.http.Do(hr)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out admissionv1.AdmissionReview
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != http.StatusOK || out.Response == nil || !out.Response.Allowed {
			t.Fatalf("POST %s: %d %+v %v", hook.Path, resp.StatusCode, out.Response, err)
		}
	}

	send(traced)
	inHandler := testkit.Receive(t, seen, 10*time.Second, "the validator's call")
	got := spans.GetSpans()
	if len(got) != 1 {
		t.Fatalf("%d spans, want the request's", len(got))
	}
	server := got[0]
	if server.Name != "POST "+hook.Path || server.SpanKind != trace.SpanKindServer {
		t.Errorf("span %q of kind %v, want the server span \"POST %s\"", server.Name, server.SpanKind, hook.Path)
	}
	if server.SpanContext.TraceID() != caller.TraceID() || server.Parent.SpanID() != caller.SpanID() {
		t.Errorf("span in trace %v under %v, want the caller's trace %v under its span %v", server.SpanContext.TraceID(), server.Parent.SpanID(), caller.TraceID(), caller.SpanID())
	}
	if inHandler.SpanID() != server.SpanContext.SpanID() {
		t.Errorf("the validator's context carries span %v, want the request's %v", inHandler.SpanID(), server.SpanContext.SpanID())
	}

	send(plain)
	if sc := testkit.Receive(t, seen, 10*time.Second, "the validator's call"); sc.IsValid() {
		t.Errorf("served without a provider, the validator's context carries span %v", sc)
	}
	if n := len(spans.GetSpans()); n != 1 {
		t.Errorf("served without a provider, %d more spans", n-1)
	}
}
