package framework

import (
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"

	"github.com/rein-k8s/rein/internal/engine"
)

// Factory holds the shared informers, clients and controllers of one group
// of kinds. Every replica starts its caches; only a hold's workers run
// handlers (see pkg/start). Its methods: RESTConfig, Scheme,
// DiscoverResource, and Base (for start.Starter).
type Factory = engine.Factory

// Options configure a Factory: the namespaces cached (all by default),
// per-kind cache shapes (KindCache), workers, retry pacing and the
// reconcile timeout per controller (DefaultWorkers, RateLimit,
// ReconcileTimeout: none by default), the metrics registry, the logger
// and the OpenTelemetry tracer provider (none: pkg/start's, from the
// OTEL_* variables, else no tracing). The zero value is a working default.
type Options = engine.Options

// RateLimit paces one controller's retries: per-key exponential backoff
// from BaseDelay to MaxDelay, within an overall token bucket of QPS and
// Burst.
type RateLimit = engine.RateLimit

// KindCache shapes one kind's cache: its namespaces, the label and field
// selectors the apiserver applies, and a transform run before objects
// enter the cache.
type KindCache = engine.KindCache

// SyncError is what waiting for caches returns when a kind did not sync in
// time: each kind with its last list error (for example a 403 naming the
// RBAC rule that is missing).
type SyncError = engine.SyncError

// DefaultWorkers is the number of workers of a controller when Options
// names none.
const DefaultWorkers = engine.DefaultWorkers

// NewFactory returns a factory of the kinds scheme registers.
func NewFactory(config *rest.Config, scheme *runtime.Scheme, opts Options) (*Factory, error) {
	return engine.NewFactory(config, scheme, opts)
}

// NewFactoryForAPIs returns a factory whose scheme has client-go's built-in
// kinds and those each addToScheme registers (an API package's
// AddToScheme).
func NewFactoryForAPIs(config *rest.Config, opts Options, addToScheme ...func(*runtime.Scheme) error) (*Factory, error) {
	return engine.NewFactoryForAPIs(config, opts, addToScheme...)
}

// DropManagedFields is the default cache transform: it drops
// metadata.managedFields, which handlers rarely read and which can be half
// of an object's size. A KindCache.Transform runs after it.
func DropManagedFields(obj any) (any, error) { return engine.DropManagedFields(obj) }
