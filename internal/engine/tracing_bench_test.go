package engine

import (
	"context"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/rein-k8s/rein/pkg/fence"
)

// BenchmarkTracingSpans is what the spans of one reconcile with one
// handler cost the engine (their start, attributes and end; the batch span
// processor's export runs on its own goroutine), off, at parent-based
// 0.01 and at 1.0. What a traced request adds in the transport is
// internal/tracing's BenchmarkTransport; the whole, against a real
// apiserver, is docs/benchmarks.md' "Tracing".
func BenchmarkTracingSpans(b *testing.B) {
	provider := func(s sdktrace.Sampler) *tracer {
		tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(s), sdktrace.WithBatcher(tracetest.NewNoopExporter()))
		b.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
		return newTracer(tp)
	}
	c := &Controller{name: "configmaps", spanName: "reconcile configmaps"}
	h := &handlerEntry{name: "mark", spanName: "handler mark"}
	term := fence.WithHold(context.Background(), fence.Fixed(fence.Token{Namespace: "ns", Lease: "lease", Term: 3}))
	for _, tc := range []struct {
		name string
		t    *tracer
	}{
		{"off", nil},
		{"parent-based 0.01", provider(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(0.01)))},
		{"sampling 1.0", provider(sdktrace.AlwaysSample())},
	} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				ctx, run := c.startReconcile(term, tc.t, "ns/name")
				_, call := c.startHandler(ctx, tc.t, h, "ns/name")
				endHandler(call, resultSuccess, handlerOutput{}, nil)
				endReconcile(run, chainResult{}, nil)
			}
		})
	}
}
