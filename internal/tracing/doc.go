// Package tracing is rein's OpenTelemetry plumbing, shared by the engine,
// the webhook server and pkg/start: reading the standard OTEL_* variables
// (Settings, read by pkg/start only, at the program's edge), the SDK
// tracer provider they describe (NewProvider, OTLP over gRPC or HTTP), the
// client transport whose requests carry traceparent (Transport), and the
// server handler that continues a caller's trace (Handler).
//
// Off is the default and costs nothing: with no exporter asked for there
// is no provider at all, and the engine and the webhook server check for
// one before doing anything (no no-op spans, no wrapped transport).
//
// When tracing is on (see Settings for exactly when), the exporters read
// their own variables (OTEL_EXPORTER_OTLP_ENDPOINT, _HEADERS, _TIMEOUT,
// _COMPRESSION, _CERTIFICATE, _INSECURE and their _TRACES_ forms), the
// batch span processor OTEL_BSP_*, and the resource OTEL_SERVICE_NAME and
// OTEL_RESOURCE_ATTRIBUTES. This package reads the few that decide what to
// build: whether to export, the protocol, and the sampler, so that a typo
// in them is an error when the replica starts rather than a silent
// default. Context crosses processes as W3C trace context and baggage;
// OTEL_PROPAGATORS is not read.
//
// Limits: only OTLP is exported (no console or Zipkin exporter); the
// apiserver continues a client's trace only for users in system:masters
// or system:monitoring, and for any other user starts its own trace with
// a link to the client's span (k8s.io/apiserver's tracing filter), which
// it then samples by its own samplingRatePerMillion.
package tracing
