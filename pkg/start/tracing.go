package start

import (
	"context"
	"fmt"
	"time"

	"github.com/sirupsen/logrus"
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/rein-k8s/rein/internal/engine"
	"github.com/rein-k8s/rein/internal/tracing"
)

// tracingFlushTimeout bounds the export of the last spans when a replica
// ends: a collector that does not answer must not hold the exit up.
const tracingFlushTimeout = 5 * time.Second

// startTracing makes the replica's tracer provider when the OTEL_*
// variables NewOptions read turn tracing on, and gives it to every
// factory built without framework.Options.TracerProvider; nil when off.
// Spans name the replica by its identity (service.instance.id).
func (r *Replica) startTracing(ctx context.Context) (*sdktrace.TracerProvider, error) {
	s := r.opts.tracing
	if !s.On {
		return nil, nil
	}
	var attrs []attribute.KeyValue
	if r.identity != "" {
		attrs = append(attrs, attribute.String("service.instance.id", r.identity))
	}
	tp, err := tracing.NewProvider(ctx, s, r.log, attrs...)
	if err != nil {
		return nil, fmt.Errorf("start: %w", err)
	}
	for _, g := range r.groups {
		for _, f := range g.Factories {
			engine.OpsOf(f.Base()).UseTracerProvider(tp)
		}
	}
	sampler := "parentbased_always_on"
	if s.Sampler != nil {
		sampler = s.Sampler.Description()
	}
	r.log.WithFields(logrus.Fields{"protocol": s.Protocol, "sampler": sampler}).Infof("tracing on (%s): spans exported by OTLP", s.Why)
	return tp, nil
}

// stopTracing exports the spans still buffered and stops tp.
func (r *Replica) stopTracing(ctx context.Context, tp *sdktrace.TracerProvider) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), tracingFlushTimeout)
	defer cancel()
	if err := tp.Shutdown(ctx); err != nil {
		r.log.WithError(err).Warn("tracing: the last spans were not all exported")
	}
}
