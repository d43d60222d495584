package tracing

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/sirupsen/logrus"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// The OTLP protocols rein exports with (OTEL_EXPORTER_OTLP_PROTOCOL).
const (
	ProtocolGRPC = "grpc"
	// ProtocolHTTP is the default, as the OpenTelemetry specification
	// has it.
	ProtocolHTTP = "http/protobuf"
)

// Settings are what the OTEL_* variables ask of a replica.
type Settings struct {
	// On: spans are made and exported.
	On bool
	// Why says what turned tracing on or off, for the log.
	Why string
	// Protocol is ProtocolGRPC or ProtocolHTTP.
	Protocol string
	// Sampler decides which traces are kept (OTEL_TRACES_SAMPLER and
	// OTEL_TRACES_SAMPLER_ARG); nil is the SDK's default,
	// parentbased_always_on.
	Sampler sdktrace.Sampler
}

// FromEnv reads the settings from getenv (os.Getenv, read by pkg/start
// only). Tracing is on when OTEL_TRACES_EXPORTER is "otlp", or when it is
// unset and an OTLP endpoint is (OTEL_EXPORTER_OTLP_TRACES_ENDPOINT or
// OTEL_EXPORTER_OTLP_ENDPOINT): an SDK would export to localhost:4317 with
// nothing set, but rein is off unless asked. OTEL_TRACES_EXPORTER=none and
// OTEL_SDK_DISABLED=true turn it off. Every malformed value is reported,
// each naming its variable.
func FromEnv(getenv func(string) string) (Settings, error) {
	var s Settings
	var errs []error
	exporter := strings.ToLower(strings.TrimSpace(getenv("OTEL_TRACES_EXPORTER")))
	endpoint := "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
	if getenv(endpoint) == "" {
		endpoint = "OTEL_EXPORTER_OTLP_ENDPOINT"
	}
	switch {
	case strings.EqualFold(strings.TrimSpace(getenv("OTEL_SDK_DISABLED")), "true"):
		s.Why = "OTEL_SDK_DISABLED=true"
	case exporter == "none":
		s.Why = "OTEL_TRACES_EXPORTER=none"
	case exporter == "otlp":
		s.On, s.Why = true, "OTEL_TRACES_EXPORTER=otlp"
	case exporter != "":
		errs = append(errs, fmt.Errorf("OTEL_TRACES_EXPORTER=%q: rein exports traces by OTLP only: want otlp or none", getenv("OTEL_TRACES_EXPORTER")))
	case getenv(endpoint) != "":
		s.On, s.Why = true, endpoint+" is set"
	default:
		s.Why = "no OTEL_TRACES_EXPORTER nor OTLP endpoint set"
	}
	if !s.On {
		return s, errors.Join(errs...)
	}

	s.Protocol = ProtocolHTTP
	for _, name := range []string{"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"} {
		v := strings.TrimSpace(getenv(name))
		if v == "" {
			continue
		}
		if v != ProtocolGRPC && v != ProtocolHTTP {
			errs = append(errs, fmt.Errorf("%s=%q: want %s or %s (http/json is not supported)", name, v, ProtocolGRPC, ProtocolHTTP))
		}
		s.Protocol = v
		break
	}
	var err error
	if s.Sampler, err = sampler(getenv("OTEL_TRACES_SAMPLER"), getenv("OTEL_TRACES_SAMPLER_ARG")); err != nil {
		errs = append(errs, err)
	}
	return s, errors.Join(errs...)
}

// sampler is the sampler OTEL_TRACES_SAMPLER and its argument name, with
// the specification's names and defaults (a ratio without an argument is
// 1.0); nil for none set.
func sampler(name, arg string) (sdktrace.Sampler, error) {
	name = strings.ToLower(strings.TrimSpace(name))
	arg = strings.TrimSpace(arg)
	ratio := func() (sdktrace.Sampler, error) {
		if arg == "" {
			return sdktrace.TraceIDRatioBased(1), nil
		}
		r, err := strconv.ParseFloat(arg, 64)
		if err != nil || r < 0 || r > 1 {
			return nil, fmt.Errorf("OTEL_TRACES_SAMPLER_ARG=%q: want a ratio from 0 to 1 for OTEL_TRACES_SAMPLER=%s", arg, name)
		}
		return sdktrace.TraceIDRatioBased(r), nil
	}
	switch name {
	case "":
		return nil, nil
	case "always_on":
		return sdktrace.AlwaysSample(), nil
	case "always_off":
		return sdktrace.NeverSample(), nil
	case "traceidratio":
		return ratio()
	case "parentbased_always_on":
		return sdktrace.ParentBased(sdktrace.AlwaysSample()), nil
	case "parentbased_always_off":
		return sdktrace.ParentBased(sdktrace.NeverSample()), nil
	case "parentbased_traceidratio":
		r, err := ratio()
		if err != nil {
			return nil, err
		}
		return sdktrace.ParentBased(r), nil
	}
	return nil, fmt.Errorf("OTEL_TRACES_SAMPLER=%q: want always_on, always_off, traceidratio, parentbased_always_on, parentbased_always_off or parentbased_traceidratio", name)
}

// NewProvider returns the tracer provider s describes, exporting in
// batches over OTLP, with attrs in its resource (beside the SDK's default
// resource, whose OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES win).
// Failed exports are logged on log, once until an export succeeds again,
// rather than through OpenTelemetry's global error handler. Shut it down
// to flush the last spans. It connects to nothing until the first export.
func NewProvider(ctx context.Context, s Settings, log *logrus.Entry, attrs ...attribute.KeyValue) (*sdktrace.TracerProvider, error) {
	if !s.On {
		return nil, errors.New("tracing: no exporter set")
	}
	var exp sdktrace.SpanExporter
	var err error
	switch s.Protocol {
	case ProtocolGRPC:
		exp, err = otlptracegrpc.New(ctx)
	case ProtocolHTTP, "":
		exp, err = otlptracehttp.New(ctx)
	default:
		err = fmt.Errorf("unknown OTLP protocol %q", s.Protocol)
	}
	if err != nil {
		return nil, fmt.Errorf("tracing: OTLP exporter: %w", err)
	}
	// resource.Default reads the environment once per process; read it
	// again so that the variables as they are now win.
	fromEnv, err := resource.New(ctx, resource.WithFromEnv())
	if err != nil {
		return nil, fmt.Errorf("tracing: resource from OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES: %w", err)
	}
	res, err := resource.Merge(resource.NewSchemaless(attrs...), resource.Default())
	if err == nil {
		res, err = resource.Merge(res, fromEnv)
	}
	if err != nil {
		return nil, fmt.Errorf("tracing: resource: %w", err)
	}
	opts := []sdktrace.TracerProviderOption{
		sdktrace.WithBatcher(&loggedExporter{SpanExporter: exp, log: log}),
		sdktrace.WithResource(res),
	}
	if s.Sampler != nil {
		opts = append(opts, sdktrace.WithSampler(s.Sampler))
	}
	return sdktrace.NewTracerProvider(opts...), nil
}

// loggedExporter logs failed exports itself and reports none to the batch
// span processor, which would hand them to OpenTelemetry's global error
// handler (the standard library's log, on every batch).
type loggedExporter struct {
	sdktrace.SpanExporter
	log     *logrus.Entry
	failing atomic.Bool
}

func (e *loggedExporter) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	err := e.SpanExporter.ExportSpans(ctx, spans)
	switch {
	case err != nil && !e.failing.Swap(true):
		e.log.WithError(err).Warn("tracing: exporting spans failed; their batches are dropped (said once, until an export succeeds)")
	case err == nil && e.failing.Swap(false):
		e.log.Info("tracing: exporting spans again")
	}
	return nil
}

// Propagator carries a trace across processes: W3C trace context
// (traceparent, tracestate) and baggage, as kube-apiserver does.
var Propagator propagation.TextMapPropagator = propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})

// noMeter keeps otelhttp from recording metrics on the global meter
// provider: rein's metrics are Prometheus'.
var noMeter = metricnoop.NewMeterProvider()

// Transport returns next wrapped so that a request made in a trace (its
// context carries a valid span context, a handler's) is a client span of
// tp and carries traceparent, so that the server's spans join the trace.
// A request outside any trace (a cache's list or watch, a lease renewal)
// passes unchanged: background traffic starts no traces.
func Transport(next http.RoundTripper, tp trace.TracerProvider) http.RoundTripper {
	return &transport{next: next, traced: otelhttp.NewTransport(next,
		otelhttp.WithTracerProvider(tp),
		otelhttp.WithPropagators(Propagator),
		otelhttp.WithMeterProvider(noMeter),
	)}
}

type transport struct {
	next, traced http.RoundTripper
}

func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	span := trace.SpanFromContext(req.Context())
	switch {
	case !span.SpanContext().IsValid():
		return t.next.RoundTrip(req)
	case !span.IsRecording():
		// A trace the sampler dropped: its client span would be dropped
		// too, and otelhttp costs ten times the request's own work in
		// the transport even then (attributes, metric options, a body
		// wrapper). The request only carries the trace, marked not
		// sampled, so that the server drops it too.
		out := req.Clone(req.Context())
		Propagator.Inject(req.Context(), propagation.HeaderCarrier(out.Header))
		return t.next.RoundTrip(out)
	}
	return t.traced.RoundTrip(req)
}

// WrappedRoundTripper lets client-go reach the transport underneath.
func (t *transport) WrappedRoundTripper() http.RoundTripper { return t.next }

// InTrace tells whether req is made as part of a trace.
func InTrace(req *http.Request) bool { return trace.SpanContextFromContext(req.Context()).IsValid() }

// Handler returns h wrapped so that each request is a server span of tp
// that continues the trace its traceparent names (a new trace when it
// names none). The span is named after the method and route(req), the
// pattern that serves it ("" for none: the method alone), so that span
// names stay few whatever paths callers send.
func Handler(h http.Handler, tp trace.TracerProvider, route func(*http.Request) string) http.Handler {
	return otelhttp.NewHandler(h, "",
		otelhttp.WithTracerProvider(tp),
		otelhttp.WithPropagators(Propagator),
		otelhttp.WithMeterProvider(noMeter),
		otelhttp.WithSpanNameFormatter(func(_ string, r *http.Request) string {
			if p := route(r); p != "" {
				return r.Method + " " + p
			}
			return r.Method
		}),
	)
}

type providerKey struct{}

// WithProvider returns ctx carrying tp: how pkg/start hands its provider
// to the webhook server it serves (webhook.Server.Serve).
func WithProvider(ctx context.Context, tp trace.TracerProvider) context.Context {
	return context.WithValue(ctx, providerKey{}, tp)
}

// ProviderFrom returns the provider ctx carries, nil for none.
func ProviderFrom(ctx context.Context) trace.TracerProvider {
	tp, _ := ctx.Value(providerKey{}).(trace.TracerProvider)
	return tp
}
