package engine_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"

	"github.com/rein-k8s/rein/internal/engine"
	"github.com/rein-k8s/rein/internal/testkit/factorytest"
	"github.com/rein-k8s/rein/pkg/fence"
)

// sentHeaders records the traceparent header of every write that leaves
// a factory's clients, below rein's transports (a rest.Config wrapper of
// the caller's runs innermost).
type sentHeaders struct {
	mu     sync.Mutex
	writes map[string][]string // "PATCH /api/v1/…" → traceparent headers ("" for none)
}

func (s *sentHeaders) wrap(cfg *rest.Config) *rest.Config {
	cfg.Wrap(func(rt http.RoundTripper) http.RoundTripper {
		return roundTripFunc(func(req *http.Request) (*http.Response, error) {
			if fence.IsWrite(req.Method) {
				s.mu.Lock()
				if s.writes == nil {
					s.writes = map[string][]string{}
				}
				what := req.Method + " " + req.URL.Path
				s.writes[what] = append(s.writes[what], req.Header.Get("traceparent"))
				s.mu.Unlock()
			}
			return rt.RoundTrip(req)
		})
	})
	return cfg
}

func (s *sentHeaders) of(what string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.writes[what]...)
}

// runUnder starts f's caches and its workers under a term that carries
// hold, until the test ends.
func runUnder(t *testing.T, f *engine.Factory, hold fence.Hold) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	if err := factorytest.StartCaches(ctx, f); err != nil {
		cancel()
		t.Fatal(err)
	}
	w, err := engine.OpsOf(f).StartWorkers(fence.WithHold(ctx, hold))
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		if err := w.Wait(10 * time.Second); err != nil {
			t.Error(err)
		}
		engine.OpsOf(f).Caches().Wait()
	})
}

// markPatch is a merge patch that sets the annotation "marked".
var markPatch = []byte(`{"metadata":{"annotations":{"marked":"yes"}}}`)

func attrs(s tracetest.SpanStub) map[attribute.Key]attribute.Value {
	m := map[attribute.Key]attribute.Value{}
	for _, kv := range s.Attributes {
		m[kv.Key] = kv.Value
	}
	return m
}

// TestTracingSpans: with a TracerProvider, a worker's run of a key is a
// span with the controller, key, result and the hold's lease, term and
// token; each handler call a child span with its result (an error
// recorded, a requeue's delay); a write a handler makes is a client span
// under the handler's, and the request carries that span as traceparent.
// A provider offered later (UseTracerProvider) does not replace the
// factory's own.
func TestTracingSpans(t *testing.T) {
	ns := newNamespace(t)
	spans := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(spans))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	var sent sentHeaders
	f, err := engine.NewFactory(sent.wrap(env.Config()), newScheme(t), engine.Options{Namespace: ns, RateLimit: fastRetries, TracerProvider: tp})
	if err != nil {
		t.Fatal(err)
	}
	other := tracetest.NewInMemoryExporter()
	engine.OpsOf(f).UseTracerProvider(sdktrace.NewTracerProvider(sdktrace.WithSyncer(other)))

	c := controller(t, f, factorytest.ConfigMaps)
	var failed sync.Once
	handlerSpans := make(chan trace.SpanContext, 16)
	c.AddHandler(t.Context(), "mark", func(ctx context.Context, key string, obj runtime.Object) (runtime.Object, error) {
		cm, ok := obj.(*corev1.ConfigMap)
		if !ok {
			return nil, nil
		}
		if cm.Name == "broken" {
			var err error
			failed.Do(func() { err = errors.New("the test breaks it once") })
			return nil, err
		}
		if cm.Annotations["marked"] != "" {
			return nil, nil
		}
		handlerSpans <- trace.SpanContextFromContext(ctx)
		var out corev1.ConfigMap
		return &out, c.Client().Patch(ctx, cm.Namespace, cm.Name, types.MergePatchType, markPatch, metav1.PatchOptions{}, &out)
	})
	c.AddHandler(t.Context(), "poll", func(ctx context.Context, key string, obj runtime.Object) (runtime.Object, error) {
		if obj == nil {
			return nil, nil
		}
		return nil, engine.RequeueAfter(time.Hour)
	})
	token := fence.Token{Namespace: ns, Lease: "tracing-test", Term: 7}
	runUnder(t, f, fence.Fixed(token))
	createConfigMap(t, ns, "traced", nil)
	createConfigMap(t, ns, "broken", nil)
	markSpan := receive(t, handlerSpans, 10*time.Second, "the mark handler's call on traced")
	if !markSpan.IsValid() || !markSpan.IsSampled() {
		t.Fatalf("the handler's context carries span context %v, want a sampled span", markSpan)
	}

	byID := func() map[trace.SpanID]tracetest.SpanStub {
		out := map[trace.SpanID]tracetest.SpanStub{}
		for _, s := range spans.GetSpans() {
			out[s.SpanContext.SpanID()] = s
		}
		return out
	}
	// The chain run that marked traced: its handler span, its reconcile
	// span, the PATCH's client span.
	var all map[trace.SpanID]tracetest.SpanStub
	var mark, reconcile, patch tracetest.SpanStub
	eventually(t, 10*time.Second, "the spans of traced's first run", func() bool {
		all = byID()
		var ok bool
		if mark, ok = all[markSpan.SpanID()]; !ok {
			return false
		}
		if reconcile, ok = all[mark.Parent.SpanID()]; !ok {
			return false
		}
		for _, s := range all {
			if s.Parent.SpanID() == mark.SpanContext.SpanID() && s.SpanKind == trace.SpanKindClient {
				patch = s
				return true
			}
		}
		return false
	})
	key := ns + "/traced"
	if reconcile.Name != "reconcile configmaps" || reconcile.Parent.IsValid() {
		t.Errorf("the run's span is %q with parent %v, want a root span \"reconcile configmaps\"", reconcile.Name, reconcile.Parent)
	}
	want := map[attribute.Key]attribute.Value{
		"rein.controller":    attribute.StringValue("configmaps"),
		"rein.key":           attribute.StringValue(key),
		"rein.result":        attribute.StringValue("requeue"),
		"rein.requeue_after": attribute.Float64Value(3600),
		"rein.lease":         attribute.StringValue(ns + "/tracing-test"),
		"rein.term":          attribute.Int64Value(7),
		"rein.fencing_token": attribute.StringValue(token.String()),
	}
	got := attrs(reconcile)
	for k, v := range want {
		if got[k] != v {
			t.Errorf("reconcile span: %s = %v, want %v", k, got[k].Emit(), v.Emit())
		}
	}
	if got := attrs(mark); mark.Name != "handler mark" || got["rein.handler"].AsString() != "mark" || got["rein.result"].AsString() != "success" || got["rein.key"].AsString() != key {
		t.Errorf("the mark handler's span: %q %v", mark.Name, mark.Attributes)
	}
	var poll tracetest.SpanStub
	for _, s := range all {
		if s.Parent.SpanID() == reconcile.SpanContext.SpanID() && s.Name == "handler poll" {
			poll = s
		}
	}
	if got := attrs(poll); got["rein.result"].AsString() != "requeue" || got["rein.requeue_after"].AsFloat64() != 3600 {
		t.Errorf("the poll handler's span (a sibling of mark's): %q %v", poll.Name, poll.Attributes)
	}
	// The write carried the client span as its parent: the apiserver's
	// span of it joins this trace.
	sentParents := sent.of("PATCH /api/v1/namespaces/" + ns + "/configmaps/traced")
	wantParent := "00-" + patch.SpanContext.TraceID().String() + "-" + patch.SpanContext.SpanID().String() + "-01"
	if len(sentParents) == 0 || sentParents[0] != wantParent {
		t.Errorf("the PATCH carried traceparent %q, want %q (its client span's)", sentParents, wantParent)
	}
	if patch.SpanContext.TraceID() != reconcile.SpanContext.TraceID() {
		t.Errorf("the client span is in trace %v, the run in %v", patch.SpanContext.TraceID(), reconcile.SpanContext.TraceID())
	}

	// A failing handler: its span records the error; the run's says
	// error.
	var failedRun, failedMark tracetest.SpanStub
	eventually(t, 10*time.Second, "the spans of broken's failed run", func() bool {
		for _, s := range spans.GetSpans() {
			if s.Name == "handler mark" && s.Status.Code == codes.Error {
				failedMark = s
			}
		}
		if !failedMark.SpanContext.IsValid() {
			return false
		}
		failedRun = byID()[failedMark.Parent.SpanID()]
		return failedRun.SpanContext.IsValid()
	})
	if got := attrs(failedMark); got["rein.key"].AsString() != ns+"/broken" || got["rein.result"].AsString() != "error" ||
		len(failedMark.Events) != 1 || failedMark.Events[0].Name != "exception" || !strings.Contains(failedMark.Status.Description, "the test breaks it once") {
		t.Errorf("the failed call's span: %v, status %v, events %v", failedMark.Attributes, failedMark.Status, failedMark.Events)
	}
	if got := attrs(failedRun); got["rein.result"].AsString() != "error" || failedRun.Status.Code != codes.Error {
		t.Errorf("the failed run's span: %v, status %v", failedRun.Attributes, failedRun.Status)
	}
	if n := len(other.GetSpans()); n != 0 {
		t.Errorf("the provider offered by UseTracerProvider got %d spans; the factory's own should keep them all", n)
	}
}

// TestTracingOff: a factory with no TracerProvider makes no span and sends
// no traceparent, even when a handler's context carries a span of the
// program's own provider; one given a provider by UseTracerProvider
// (pkg/start's) traces; a run the sampler drops records no span but its
// writes still carry the trace, marked not sampled, so the apiserver does
// not sample it either.
func TestTracingOff(t *testing.T) {
	ns := newNamespace(t)
	own := tracetest.NewInMemoryExporter()
	ownTP := sdktrace.NewTracerProvider(sdktrace.WithSyncer(own))
	t.Cleanup(func() { _ = ownTP.Shutdown(context.Background()) })

	cases := []struct {
		name     string
		provider *sdktrace.TracerProvider // given by UseTracerProvider; nil: none
		// want is the flags of the traceparent sent: "" for none.
		want string
	}{
		{"off", nil, ""},
		{"never sampled", sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.NeverSample())), "00"},
		{"on", sdktrace.NewTracerProvider(), "01"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var sent sentHeaders
			f, err := engine.NewFactory(sent.wrap(env.Config()), newScheme(t), engine.Options{Namespace: ns, RateLimit: fastRetries})
			if err != nil {
				t.Fatal(err)
			}
			var exp *tracetest.InMemoryExporter
			if tc.provider != nil {
				t.Cleanup(func() { _ = tc.provider.Shutdown(context.Background()) })
				exp = tracetest.NewInMemoryExporter()
				tc.provider.RegisterSpanProcessor(sdktrace.NewSimpleSpanProcessor(exp))
				engine.OpsOf(f).UseTracerProvider(tc.provider)
			}
			c := controller(t, f, factorytest.ConfigMaps)
			name := strings.ReplaceAll(tc.name, " ", "-")
			done := make(chan trace.SpanContext, 1)
			c.AddHandler(t.Context(), "mark", func(ctx context.Context, key string, obj runtime.Object) (runtime.Object, error) {
				cm, ok := obj.(*corev1.ConfigMap)
				if !ok || cm.Name != name || cm.Annotations["marked"] != "" {
					return nil, nil
				}
				rein := trace.SpanContextFromContext(ctx)
				// The program's own span around the write.
				ctx, span := ownTP.Tracer("test").Start(ctx, "own")
				defer span.End()
				var out corev1.ConfigMap
				err := c.Client().Patch(ctx, cm.Namespace, cm.Name, types.MergePatchType, markPatch, metav1.PatchOptions{}, &out)
				done <- rein
				return &out, err
			})
			runUnder(t, f, fence.Fixed(fence.Token{Namespace: ns, Lease: "l", Term: 1}))
			createConfigMap(t, ns, name, nil)
			rein := receive(t, done, 10*time.Second, "the handler's call")
			sentParents := sent.of("PATCH /api/v1/namespaces/" + ns + "/configmaps/" + name)
			if len(sentParents) != 1 {
				t.Fatalf("PATCHes sent: %q, want one", sentParents)
			}
			got := sentParents[0]
			switch {
			case tc.want == "" && (got != "" || rein.IsValid()):
				t.Errorf("tracing off: the PATCH carried traceparent %q, the handler's context span %v; want neither", got, rein)
			case tc.want != "" && (!strings.HasPrefix(got, "00-"+rein.TraceID().String()+"-") || !strings.HasSuffix(got, "-"+tc.want)):
				t.Errorf("the PATCH carried traceparent %q, want trace %s with flags %s", got, rein.TraceID(), tc.want)
			}
			if exp != nil {
				n := len(exp.GetSpans())
				if tc.want == "00" && n != 0 {
					t.Errorf("a dropped trace recorded %d spans", n)
				}
				if tc.want == "01" && n == 0 {
					t.Errorf("a provider given by UseTracerProvider recorded no span")
				}
			}
		})
	}
}
