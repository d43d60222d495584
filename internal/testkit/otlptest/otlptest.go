// Package otlptest is an OTLP trace receiver inside the test's own
// process: the OTLP TraceService over gRPC (what kube-apiserver exports
// with) and OTLP/HTTP (POST /v1/traces, protobuf), both on loopback, so
// that a test reads the spans that a replica, the apiserver or both sent,
// and a benchmark gives its exporters somewhere to send them. It keeps
// every span it receives (or only counts them), flattened to what tests
// compare: ids in hex, attributes as strings.
package otlptest

import (
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
)

// Span is one received span.
type Span struct {
	// Service is its resource's service.name.
	Service string
	// TraceID, SpanID and ParentID are hex; ParentID is "" for a root.
	TraceID, SpanID, ParentID string
	Name                      string
	// Kind is "internal", "server", "client", "producer" or "consumer".
	Kind string
	// Attrs are its attributes, every value as a string.
	Attrs map[string]string
	// Error: its status is Error; Status is the status's message.
	Error  bool
	Status string
	// Links are its links, as "traceID/spanID".
	Links []string
}

// Receiver receives OTLP traces until Stop.
type Receiver struct {
	keep     bool
	grpc     *grpc.Server
	grpcLis  net.Listener
	http     *http.Server
	httpLis  net.Listener
	served   sync.WaitGroup
	received atomic.Int64

	mu      sync.Mutex
	spans   []Span
	changed chan struct{} // closed and replaced at every export
}

// Start listens on two loopback ports, gRPC and HTTP. keep false only
// counts the spans (Count), for a benchmark that sends many.
func Start(keep bool) (*Receiver, error) {
	r := &Receiver{keep: keep, changed: make(chan struct{})}
	var err error
	if r.grpcLis, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
		return nil, err
	}
	if r.httpLis, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
		_ = r.grpcLis.Close()
		return nil, err
	}
	r.grpc = grpc.NewServer()
	coltracepb.RegisterTraceServiceServer(r.grpc, traceService{r: r})
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/traces", r.serveHTTP)
	r.http = &http.Server{Handler: mux}
	r.served.Go(func() { _ = r.grpc.Serve(r.grpcLis) })
	r.served.Go(func() { _ = r.http.Serve(r.httpLis) })
	return r, nil
}

// GRPCAddr is the gRPC endpoint, "127.0.0.1:port" (kube-apiserver's
// TracingConfiguration endpoint).
func (r *Receiver) GRPCAddr() string { return r.grpcLis.Addr().String() }

// GRPCURL is the gRPC endpoint as OTEL_EXPORTER_OTLP_ENDPOINT takes it
// (http: no TLS).
func (r *Receiver) GRPCURL() string { return "http://" + r.GRPCAddr() }

// HTTPURL is the OTLP/HTTP endpoint as OTEL_EXPORTER_OTLP_ENDPOINT takes
// it (the exporter adds /v1/traces).
func (r *Receiver) HTTPURL() string { return "http://" + r.httpLis.Addr().String() }

// Stop stops both servers and waits for them.
func (r *Receiver) Stop() {
	r.grpc.Stop()
	_ = r.http.Close()
	r.served.Wait()
}

// Count is the number of spans received so far.
func (r *Receiver) Count() int64 { return r.received.Load() }

// Spans returns a copy of the spans kept so far, in arrival order.
func (r *Receiver) Spans() []Span {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Span(nil), r.spans...)
}

// Wait blocks until cond holds for the spans kept (tested at every export)
// or ctx ends, and returns the spans it held for, or ctx's error.
func (r *Receiver) Wait(ctx context.Context, cond func([]Span) bool) ([]Span, error) {
	for {
		r.mu.Lock()
		spans, changed := append([]Span(nil), r.spans...), r.changed
		r.mu.Unlock()
		if cond(spans) {
			return spans, nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return spans, context.Cause(ctx)
		}
	}
}

func (r *Receiver) take(req *coltracepb.ExportTraceServiceRequest) {
	var n int64
	var got []Span
	for _, rs := range req.GetResourceSpans() {
		service := attrs(rs.GetResource().GetAttributes())["service.name"]
		for _, ss := range rs.GetScopeSpans() {
			n += int64(len(ss.GetSpans()))
			if !r.keep {
				continue
			}
			for _, s := range ss.GetSpans() {
				got = append(got, flatten(service, s))
			}
		}
	}
	r.received.Add(n)
	r.mu.Lock()
	r.spans = append(r.spans, got...)
	close(r.changed)
	r.changed = make(chan struct{})
	r.mu.Unlock()
}

type traceService struct {
	coltracepb.UnimplementedTraceServiceServer
	r *Receiver
}

func (s traceService) Export(_ context.Context, req *coltracepb.ExportTraceServiceRequest) (*coltracepb.ExportTraceServiceResponse, error) {
	s.r.take(req)
	return &coltracepb.ExportTraceServiceResponse{}, nil
}

func (r *Receiver) serveHTTP(w http.ResponseWriter, req *http.Request) {
	if ct := req.Header.Get("Content-Type"); ct != "application/x-protobuf" {
		http.Error(w, fmt.Sprintf("content type %q: only application/x-protobuf is received", ct), http.StatusUnsupportedMediaType)
		return
	}
	body, err := io.ReadAll(req.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var in coltracepb.ExportTraceServiceRequest
	if err := proto.Unmarshal(body, &in); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	r.take(&in)
	out, err := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/x-protobuf")
	_, _ = w.Write(out)
}

func flatten(service string, s *tracepb.Span) Span {
	out := Span{
		Service: service,
		TraceID: hex.EncodeToString(s.GetTraceId()),
		SpanID:  hex.EncodeToString(s.GetSpanId()),
		Name:    s.GetName(),
		Attrs:   attrs(s.GetAttributes()),
		Error:   s.GetStatus().GetCode() == tracepb.Status_STATUS_CODE_ERROR,
		Status:  s.GetStatus().GetMessage(),
	}
	if p := s.GetParentSpanId(); len(p) > 0 {
		out.ParentID = hex.EncodeToString(p)
	}
	switch s.GetKind() {
	case tracepb.Span_SPAN_KIND_SERVER:
		out.Kind = "server"
	case tracepb.Span_SPAN_KIND_CLIENT:
		out.Kind = "client"
	case tracepb.Span_SPAN_KIND_PRODUCER:
		out.Kind = "producer"
	case tracepb.Span_SPAN_KIND_CONSUMER:
		out.Kind = "consumer"
	default:
		out.Kind = "internal"
	}
	for _, l := range s.GetLinks() {
		out.Links = append(out.Links, hex.EncodeToString(l.GetTraceId())+"/"+hex.EncodeToString(l.GetSpanId()))
	}
	return out
}

func attrs(kvs []*commonpb.KeyValue) map[string]string {
	m := make(map[string]string, len(kvs))
	for _, kv := range kvs {
		m[kv.GetKey()] = value(kv.GetValue())
	}
	return m
}

func value(v *commonpb.AnyValue) string {
	switch x := v.GetValue().(type) {
	case *commonpb.AnyValue_StringValue:
		return x.StringValue
	case *commonpb.AnyValue_IntValue:
		return strconv.FormatInt(x.IntValue, 10)
	case *commonpb.AnyValue_DoubleValue:
		return strconv.FormatFloat(x.DoubleValue, 'g', -1, 64)
	case *commonpb.AnyValue_BoolValue:
		return strconv.FormatBool(x.BoolValue)
	case nil:
		return ""
	}
	return v.String()
}
