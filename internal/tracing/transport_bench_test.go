package tracing

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

type answerRT struct{}

func (answerRT) RoundTrip(*http.Request) (*http.Response, error) {
	return &http.Response{StatusCode: http.StatusOK, Body: io.NopCloser(strings.NewReader("{}")), Header: http.Header{}}, nil
}

// BenchmarkTransport is what Transport adds to one request in the
// transport itself (the server answers at once): none (no tracing), a
// request outside any trace, one in a trace the sampler dropped (the
// common case at a low sampling ratio), and one in a sampled trace.
func BenchmarkTransport(b *testing.B) {
	dropping := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.NeverSample()))
	sampling := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sdktrace.NewSimpleSpanProcessor(tracetest.NewNoopExporter())))
	dropped, end1 := dropping.Tracer("b").Start(context.Background(), "reconcile")
	defer end1.End()
	sampled, end2 := sampling.Tracer("b").Start(context.Background(), "reconcile")
	defer end2.End()
	for _, tc := range []struct {
		name string
		rt   http.RoundTripper
		ctx  context.Context
	}{
		{"no tracing", answerRT{}, context.Background()},
		{"outside a trace", Transport(answerRT{}, sampling), context.Background()},
		{"dropped trace", Transport(answerRT{}, dropping), dropped},
		{"sampled trace", Transport(answerRT{}, sampling), sampled},
	} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			req, err := http.NewRequestWithContext(tc.ctx, http.MethodPatch, "https://127.0.0.1:6443/api/v1/namespaces/x/configmaps/y", strings.NewReader("{}"))
			if err != nil {
				b.Fatal(err)
			}
			for b.Loop() {
				resp, err := tc.rt.RoundTrip(req)
				if err != nil {
					b.Fatal(err)
				}
				_ = resp.Body.Close()
			}
		})
	}
}
