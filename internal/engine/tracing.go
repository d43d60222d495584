package engine

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync/atomic"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/rein-k8s/rein/internal/tracing"
	"github.com/rein-k8s/rein/pkg/fence"
)

// Tracing (Options.TracerProvider).
//
// A worker's run of a key is a span, "reconcile <controller>", and each
// handler call in it a child span, "handler <name>"; the requests a
// handler makes through the factory's clients are client spans under its
// span and carry traceparent, so that the apiserver's spans of a write
// join the trace. The engine's own writes of the run (finalizers) are
// under the reconcile span. Nothing else starts a trace: caches' lists
// and watches, events and lease renewals are not traced.
//
// Off (no provider) costs one atomic load per key, one per handler call
// and one per request: no span, no context, no attribute is made. On, a
// span that is not sampled gets no attributes either (they are set only
// on recording spans).

// instrumentationScope names rein's tracer (the instrumentation scope).
const instrumentationScope = "github.com/rein-k8s/rein"

// Span attributes. There are no semantic conventions for a controller's
// work, so they are rein's own, in its namespace.
const (
	// attrController is the controller (its resource: "configmaps",
	// "virtualmachines.vm.rein.dev").
	attrController = attribute.Key("rein.controller")
	// attrKey is the key reconciled: "namespace/name" or "name".
	attrKey = attribute.Key("rein.key")
	// attrHandler names the handler of a handler span.
	attrHandler = attribute.Key("rein.handler")
	// attrResult is a handler's result as rein_handler_executions_total
	// counts it (success, error, panic, timeout, skip, requeue), or a
	// reconcile's (success, error, requeue).
	attrResult = attribute.Key("rein.result")
	// attrRequeueAfter is the delay a RequeueAfter asked for, in seconds.
	attrRequeueAfter = attribute.Key("rein.requeue_after")
	// attrLease, attrTerm and attrToken are the hold the run works
	// under: its Lease ("namespace/name": a single leader's, or a shard's,
	// "<group>-shard-<n>"), its term, and the fencing token as
	// external systems receive it ("namespace/lease/term").
	attrLease = attribute.Key("rein.lease")
	attrTerm  = attribute.Key("rein.term")
	attrToken = attribute.Key("rein.fencing_token")
	// attrStack is a panicking handler's stack, on its exception event.
	attrStack = attribute.Key("exception.stacktrace")
)

// tracer is a factory's tracing: the provider (for the clients'
// transport) and rein's tracer of it.
type tracer struct {
	provider trace.TracerProvider
	tracer   trace.Tracer
}

func newTracer(tp trace.TracerProvider) *tracer {
	if tp == nil {
		return nil
	}
	return &tracer{provider: tp, tracer: tp.Tracer(instrumentationScope)}
}

// UseTracerProvider makes tp trace the factory's reconciles, handlers and
// their requests, unless its Options named a TracerProvider (which it
// keeps). pkg/start calls it with the replica's provider when the OTEL_*
// variables turn tracing on. It may be called at any time; work under
// way keeps the tracer it started with.
func (f *Ops) UseTracerProvider(tp trace.TracerProvider) {
	if tp == nil || f.opts.TracerProvider != nil {
		return
	}
	(*Factory)(f).setTracer(newTracer(tp))
}

func (f *Factory) setTracer(t *tracer) {
	f.tracer.Store(t)
	if f.clients != nil {
		f.clients.tracer.Store(t)
	}
}

// startReconcile returns ctx with the span of a run of key under t, and
// the span; ctx and nil when t is nil (tracing off).
func (c *Controller) startReconcile(ctx context.Context, t *tracer, key string) (context.Context, trace.Span) {
	if t == nil {
		return ctx, nil
	}
	ctx, span := t.tracer.Start(ctx, c.spanName)
	if span.IsRecording() {
		span.SetAttributes(attrController.String(c.name), attrKey.String(key))
		if tok, ok := fence.TokenFrom(ctx); ok {
			span.SetAttributes(attrLease.String(tok.Namespace+"/"+tok.Lease), attrTerm.Int64(tok.Term), attrToken.String(tok.String()))
		}
	}
	return ctx, span
}

// endReconcile ends span (nil: nothing) with how the run ended: res, or
// err when no chain ran (the cache lookup failed).
func endReconcile(span trace.Span, res chainResult, err error) {
	if span == nil {
		return
	}
	if span.IsRecording() {
		switch {
		case err != nil:
			span.SetAttributes(attrResult.String(resultError))
			span.RecordError(err)
			span.SetStatus(codes.Error, err.Error())
		case len(res.errs) > 0:
			span.SetAttributes(attrResult.String(resultError))
			if res.notRun {
				// No handler span says why: the finalizers could not be
				// put on the object first.
				span.RecordError(res.errs[0].Err)
			}
			msg := res.errs[0].Error()
			if len(res.errs) > 1 {
				msg = fmt.Sprintf("%s (and %d more)", msg, len(res.errs)-1)
			}
			span.SetStatus(codes.Error, msg)
		case res.requeueAfter > 0:
			span.SetAttributes(attrResult.String(resultRequeue), attrRequeueAfter.Float64(res.requeueAfter.Seconds()))
		default:
			span.SetAttributes(attrResult.String(resultSuccess))
		}
	}
	span.End()
}

// startHandler returns ctx with the span of handler h's call on key under
// t; ctx and nil when t is nil.
func (c *Controller) startHandler(ctx context.Context, t *tracer, h *handlerEntry, key string) (context.Context, trace.Span) {
	if t == nil {
		return ctx, nil
	}
	ctx, span := t.tracer.Start(ctx, h.spanName)
	if span.IsRecording() {
		span.SetAttributes(attrController.String(c.name), attrHandler.String(h.name), attrKey.String(key))
	}
	return ctx, span
}

// endHandler ends span (nil: nothing) with the handler call's result.
func endHandler(span trace.Span, result string, out handlerOutput, herr *HandlerError) {
	if span == nil {
		return
	}
	if span.IsRecording() {
		span.SetAttributes(attrResult.String(result))
		var requeue *RequeueAfterError
		if result == resultRequeue && errors.As(out.err, &requeue) {
			span.SetAttributes(attrRequeueAfter.Float64(requeue.Delay.Seconds()))
		}
		if herr != nil {
			if herr.Panicked {
				span.RecordError(herr.Err, trace.WithAttributes(attrStack.String(string(herr.Stack))))
			} else {
				span.RecordError(herr.Err)
			}
			span.SetStatus(codes.Error, herr.Err.Error())
		}
	}
	span.End()
}

// tracedTransport is the outermost layer of a client factory's transport:
// a request made in a trace goes through OpenTelemetry's client transport
// (a client span, traceparent sent) while the factory traces; any other
// request, and every request while it does not, goes straight on.
type tracedTransport struct {
	next   http.RoundTripper
	tracer *atomic.Pointer[tracer] // the factory's
	// traced is the OpenTelemetry transport around next, made on the
	// first traced request for the tracer it names.
	traced atomic.Pointer[tracedNext]
}

type tracedNext struct {
	tracer *tracer
	rt     http.RoundTripper
}

func (t *tracedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	tr := t.tracer.Load()
	if tr == nil || !tracing.InTrace(req) {
		return t.next.RoundTrip(req)
	}
	n := t.traced.Load()
	if n == nil || n.tracer != tr {
		// Two requests may both make one; either serves.
		n = &tracedNext{tracer: tr, rt: tracing.Transport(t.next, tr.provider)}
		t.traced.Store(n)
	}
	return n.rt.RoundTrip(req)
}

// WrappedRoundTripper lets client-go reach the transport underneath.
func (t *tracedTransport) WrappedRoundTripper() http.RoundTripper { return t.next }
