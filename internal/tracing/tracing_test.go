package tracing

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/rein-k8s/rein/internal/testkit/otlptest"
)

func envOf(vars map[string]string) func(string) string {
	return func(name string) string { return vars[name] }
}

func TestFromEnv(t *testing.T) {
	cases := []struct {
		name     string
		env      map[string]string
		on       bool
		protocol string
		sampler  string // the sampler's Description; "" for none set
		errs     []string
	}{
		{name: "nothing set: off", env: nil},
		{name: "an endpoint turns it on, http/protobuf by default", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, on: true, protocol: ProtocolHTTP},
		{name: "the traces endpoint too", env: map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/v1/traces"}, on: true, protocol: ProtocolHTTP},
		{name: "exporter otlp alone", env: map[string]string{"OTEL_TRACES_EXPORTER": "otlp"}, on: true, protocol: ProtocolHTTP},
		{name: "exporter none wins over an endpoint", env: map[string]string{"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}},
		{name: "the SDK disabled", env: map[string]string{"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "otlp"}},
		{name: "grpc", env: map[string]string{"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, on: true, protocol: ProtocolGRPC},
		{name: "the traces protocol wins", env: map[string]string{"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf"}, on: true, protocol: ProtocolHTTP},
		{name: "parent-based ratio", env: map[string]string{"OTEL_TRACES_EXPORTER": "otlp", "OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.01"}, on: true, protocol: ProtocolHTTP,
			sampler: "ParentBased{root:TraceIDRatioBased{0.01},remoteParentSampled:AlwaysOnSampler,remoteParentNotSampled:AlwaysOffSampler,localParentSampled:AlwaysOnSampler,localParentNotSampled:AlwaysOffSampler}"},
		{name: "always on", env: map[string]string{"OTEL_TRACES_EXPORTER": "otlp", "OTEL_TRACES_SAMPLER": "always_on"}, on: true, protocol: ProtocolHTTP, sampler: "AlwaysOnSampler"},
		{name: "mistakes, each named", env: map[string]string{"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json", "OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "2"}, on: true,
			errs: []string{"OTEL_EXPORTER_OTLP_PROTOCOL=\"http/json\"", "OTEL_TRACES_SAMPLER_ARG=\"2\""}},
		{name: "an unknown sampler", env: map[string]string{"OTEL_TRACES_EXPORTER": "otlp", "OTEL_TRACES_SAMPLER": "jaeger_remote"}, on: true, errs: []string{"OTEL_TRACES_SAMPLER=\"jaeger_remote\""}},
		{name: "another exporter", env: map[string]string{"OTEL_TRACES_EXPORTER": "zipkin", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, errs: []string{"OTEL_TRACES_EXPORTER=\"zipkin\""}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, err := FromEnv(envOf(tc.env))
			for _, want := range tc.errs {
				if err == nil || !strings.Contains(err.Error(), want) {
					t.Errorf("error %v, want it to name %s", err, want)
				}
			}
			if len(tc.errs) > 0 {
				return
			}
			if err != nil {
				t.Fatalf("error %v", err)
			}
			if s.On != tc.on || s.Protocol != tc.protocol || s.Why == "" {
				t.Errorf("settings %+v, want on %v, protocol %q and a reason", s, tc.on, tc.protocol)
			}
			got := ""
			if s.Sampler != nil {
				got = s.Sampler.Description()
			}
			if got != tc.sampler {
				t.Errorf("sampler %q, want %q", got, tc.sampler)
			}
		})
	}
}

// TestProviderExports: the provider exports to the receiver over either
// protocol, with the resource's service name from the environment and
// the attributes given, and flushes on Shutdown.
func TestProviderExports(t *testing.T) {
	recv, err := otlptest.Start(true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(recv.Stop)
	for _, tc := range []struct{ protocol, endpoint string }{{ProtocolGRPC, recv.GRPCURL()}, {ProtocolHTTP, recv.HTTPURL()}} {
		t.Run(tc.protocol, func(t *testing.T) {
			t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", tc.endpoint)
			t.Setenv("OTEL_SERVICE_NAME", "svc-"+tc.protocol)
			s, err := FromEnv(envOf(map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": tc.endpoint, "OTEL_EXPORTER_OTLP_PROTOCOL": tc.protocol}))
			if err != nil {
				t.Fatal(err)
			}
			tp, err := NewProvider(t.Context(), s, logrus.NewEntry(logrus.New()), attribute.String("service.instance.id", "replica-1"))
			if err != nil {
				t.Fatal(err)
			}
			_, span := tp.Tracer("test").Start(t.Context(), "over "+tc.protocol)
			span.End()
			if err := tp.Shutdown(t.Context()); err != nil {
				t.Fatal(err)
			}
			var found bool
			for _, s := range recv.Spans() {
				if s.Name == "over "+tc.protocol {
					found = s.Service == "svc-"+tc.protocol
				}
			}
			if !found {
				t.Errorf("received %+v, want the span %q of service svc-%s", recv.Spans(), "over "+tc.protocol, tc.protocol)
			}
		})
	}
}

// TestFailedExportsAreLoggedOnce: an unreachable collector is said once
// on the replica's log, and again when exports work.
func TestFailedExportsAreLoggedOnce(t *testing.T) {
	var logs bytes.Buffer
	logger := logrus.New()
	logger.SetOutput(&logs)
	failing := &failingExporter{fail: true}
	e := &loggedExporter{SpanExporter: failing, log: logrus.NewEntry(logger)}
	for range 3 {
		if err := e.ExportSpans(t.Context(), nil); err != nil {
			t.Fatalf("an export error reached the SDK: %v", err)
		}
	}
	failing.fail = false
	_ = e.ExportSpans(t.Context(), nil)
	if n := strings.Count(logs.String(), "exporting spans failed"); n != 1 {
		t.Errorf("failures logged %d times, want once:\n%s", n, logs.String())
	}
	if !strings.Contains(logs.String(), "exporting spans again") {
		t.Errorf("the recovery is not logged:\n%s", logs.String())
	}
}

type failingExporter struct {
	sdktrace.SpanExporter
	fail bool
}

func (f *failingExporter) ExportSpans(context.Context, []sdktrace.ReadOnlySpan) error {
	if f.fail {
		return context.DeadlineExceeded
	}
	return nil
}

// TestHandlerAndTransport: a request sent through Transport in a trace
// carries it, and Handler continues it in a server span named after the
// route; a request outside any trace is sent as it is.
func TestHandlerAndTransport(t *testing.T) {
	spans := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(spans))
	headers := make(chan string, 2)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		headers <- r.Header.Get("traceparent")
	})
	srv := httptest.NewServer(Handler(h, tp, func(r *http.Request) string { return "/validate" }))
	t.Cleanup(srv.Close)
	client := &http.Client{Transport: Transport(http.DefaultTransport, tp), Timeout: 10 * time.Second}
	t.Cleanup(client.CloseIdleConnections)

	send := func(ctx context.Context) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL+"/validate?x=1", nil)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
	}
	send(t.Context())
	if got := <-headers; got != "" {
		t.Errorf("a request outside any trace carried traceparent %q", got)
	}
	ctx, parent := tp.Tracer("test").Start(t.Context(), "handler")
	send(ctx)
	parent.End()
	if got := <-headers; !strings.Contains(got, parent.SpanContext().TraceID().String()) {
		t.Errorf("a request in a trace carried traceparent %q, want trace %s", got, parent.SpanContext().TraceID())
	}
	var server, client2 tracetest.SpanStub
	for _, s := range spans.GetSpans() {
		switch s.SpanKind {
		case trace.SpanKindServer:
			if s.Parent.IsValid() {
				server = s
			}
		case trace.SpanKindClient:
			client2 = s
		}
	}
	if client2.Parent.SpanID() != parent.SpanContext().SpanID() {
		t.Errorf("the client span's parent is %v, want the handler's span", client2.Parent.SpanID())
	}
	if server.Name != "POST /validate" || server.Parent.SpanID() != client2.SpanContext.SpanID() || !server.Parent.IsRemote() {
		t.Errorf("server span %q with parent %v, want \"POST /validate\" continuing the client span %v", server.Name, server.Parent, client2.SpanContext.SpanID())
	}
}
