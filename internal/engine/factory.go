package engine

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rein-k8s/rein/internal/partition"
	"github.com/rein-k8s/rein/internal/rbacneeds"
	"github.com/rein-k8s/rein/pkg/fence"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"
	"go.opentelemetry.io/otel/trace"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
)

// DefaultWorkers is how many keys a controller processes at once unless
// Options says otherwise.
const DefaultWorkers = 5

// Options configures a Factory. The zero value is ready to use.
type Options struct {
	// Namespace limits the caches of namespaced kinds to one namespace;
	// "" caches all namespaces.
	Namespace string
	// Namespaces limits the caches of namespaced kinds to several
	// namespaces, one list and watch each (set Namespace or Namespaces).
	Namespaces []string
	// CachePerKind shapes the caches of single kinds: their namespaces,
	// label and field selectors, and a transform (see KindCache).
	CachePerKind map[schema.GroupVersionKind]KindCache
	// Workers per controller; 0 means DefaultWorkers.
	Workers int
	// WorkersPerKind overrides Workers for single kinds.
	WorkersPerKind map[schema.GroupVersionKind]int
	// RateLimit paces retries; zero fields take RateLimit's defaults.
	RateLimit RateLimit
	// RateLimitPerKind overrides RateLimit for single kinds (each kind's
	// queue has its own limiter: a kind that fails a lot does not slow the
	// retries of another).
	RateLimitPerKind map[schema.GroupVersionKind]RateLimit
	// ReconcileTimeout bounds each handler call of a worker: the
	// handler's context ends after it (context.DeadlineExceeded), and
	// the call counts as a timeout and is retried with backoff. A handler
	// that ignores its context is left running once the timeout and a
	// short grace (half the timeout, at most 1s) have passed: its worker
	// takes other keys, while the key itself waits for that call to
	// return before it runs again. The late writes of a call left running
	// pass the fence only while this replica still holds the term or
	// shard the call started under. 0, the default, sets no timeout: any
	// default would cut off some handler that legitimately waits long (on
	// an outside system) in a program that never asked for one.
	ReconcileTimeout time.Duration
	// ReconcileTimeoutPerKind overrides ReconcileTimeout for single
	// kinds; 0 sets none for the kind. It is per kind, as workers are:
	// the timeout gives a kind's workers back.
	ReconcileTimeoutPerKind map[schema.GroupVersionKind]time.Duration
	// CompressResponses asks the apiserver to gzip its responses (lists,
	// watch streams). Off by default: next to the apiserver, gzip costs
	// both sides more CPU than the bandwidth it saves (docs/design.md,
	// "Wire format"). A rest.Config with DisableCompression set keeps it
	// off either way.
	CompressResponses bool
	// SyncTimeout bounds one WaitForCacheSync; 0 means
	// DefaultSyncTimeout.
	SyncTimeout time.Duration
	// Registerer receives the engine's Prometheus metrics. Leave it nil
	// under pkg/start: the replica registers them on the registry its
	// /metrics serves (see Factory.RegisterMetrics). Outside start, nil
	// records none.
	Registerer prometheus.Registerer
	// Logger is where the engine and the handlers log (see Logger); nil
	// means logrus's standard logger. To log to a logr.Logger or an
	// slog.Handler, give it framework.LogrusToLogr's or LogrusToSlog's.
	Logger *logrus.Entry
	// KeepManagedFields keeps metadata.managedFields in cached objects,
	// which are dropped by default (see CacheOptions).
	KeepManagedFields bool
	// PartitionShards, above zero, partitions the caches of the
	// factory's controllers' kinds among the replicas of a sharded group
	// of that many shards (start.Group.Shards, which must be the same):
	// each replica lists and watches only the objects of the shards it
	// holds, and a key's shard is its object's, by UID. It needs the
	// apiserver's feature gate ShardedListAndWatch (alpha in Kubernetes
	// 1.36); without it every replica caches every object, as without
	// this option, and logs it once per kind. Related kinds and children
	// stay cached in full. Every replica of the group must use the same
	// setting. See docs/sharding.md, "Partitioned caches".
	PartitionShards int
	// PartitionByNamespace partitions by namespace instead of UID: the
	// objects of a namespace share a shard.
	PartitionByNamespace bool
	// TracerProvider traces the factory's work with OpenTelemetry: a span
	// per reconcile of a key and per handler call, and a client span per
	// request a handler makes, which carries traceparent so that the
	// apiserver's spans of the write join the trace. A handler's context
	// carries its span (trace.SpanFromContext). Nil: under pkg/start, the
	// replica's provider when the OTEL_* variables turn tracing on (see
	// pkg/start); elsewhere none, at no cost.
	TracerProvider trace.TracerProvider
}

// Factory is the engine of one group of controllers: shared clients, shared
// caches, and one shared controller per kind. Its life has two steps that
// leader election sits between:
//
//  1. StartCaches and WaitForCacheSync, on every replica: informers run,
//     caches sync, every key is queued. No handler runs.
//  2. StartWorkers, on the leader only: workers run the handler chains until
//     its context ends, then drain.
type Factory struct {
	opts    Options
	log     *logrus.Entry
	scheme  *runtime.Scheme
	clients *ClientFactory // nil on a Backend
	caches  *CacheFactory  // nil on a Backend
	backend Backend        // nil: the apiserver of clients
	metrics *metrics
	// tracer traces the controllers' runs (nil: off); see tracing.go.
	tracer atomic.Pointer[tracer]

	mu          sync.Mutex
	controllers map[cacheKey]*Controller
	setupErrs   []error
	started     bool     // StartCaches ran: metrics can no longer be attached
	workers     *Workers // the running generation, for controllers added late
	gate        KeyGate  // admits workers to keys (sharding); nil admits all
	onSynced    func()   // Observe: after a WaitForCacheSync that succeeded
	onWorking   func()   // Observe: as a generation of workers starts

	// rbac is what the factory's caches, controllers and the sets and
	// handlers built on them need of the apiserver (see rbac.go).
	rbac rbacneeds.Set
}

// NewFactory returns a factory for the kinds of scheme, talking to the
// apiserver of config.
func NewFactory(config *rest.Config, scheme *runtime.Scheme, opts Options) (*Factory, error) {
	if config != nil && !opts.CompressResponses {
		config = rest.CopyConfig(config)
		config.DisableCompression = true
	}
	clients, err := NewClientFactory(config, scheme)
	if err != nil {
		return nil, err
	}
	log := opts.Logger
	if log == nil {
		log = logrus.NewEntry(logrus.StandardLogger())
	}
	caches, err := newCacheFactory(clients, CacheOptions{
		Namespace:         opts.Namespace,
		Namespaces:        opts.Namespaces,
		KeepManagedFields: opts.KeepManagedFields,
		PerKind:           opts.CachePerKind,
	})
	if err != nil {
		return nil, err
	}
	f := &Factory{
		opts:        opts,
		log:         log,
		scheme:      scheme,
		clients:     clients,
		caches:      caches,
		controllers: map[cacheKey]*Controller{},
	}
	if f.metrics, err = newMetrics(opts.Registerer, f.caches); err != nil {
		return nil, fmt.Errorf("framework: register metrics: %w", err)
	}
	if opts.PartitionShards != 0 {
		field := partition.ByUID
		if opts.PartitionByNamespace {
			field = partition.ByNamespace
		}
		if err := OpsOf(f).Partition(field, opts.PartitionShards); err != nil {
			return nil, err
		}
	}
	f.setTracer(newTracer(opts.TracerProvider))
	return f, nil
}

// ErrMetricsElsewhere is what RegisterMetrics returns for a factory whose
// Options.Registerer is another registry than the one offered.
var ErrMetricsElsewhere = errors.New("the factory's metrics are registered on the Registerer of its framework.Options")

// RegisterMetrics registers the engine's metrics (handler runs, queues,
// cache sizes) on reg, for a factory built without Options.Registerer.
// start.New calls it with the registry the replica serves, so /metrics
// shows the engine's metrics with no wiring: one registry is the default,
// and forgetting to pass it cannot happen. A factory built with reg as its
// Registerer is left as it is; one built with another Registerer gets
// ErrMetricsElsewhere (its metrics stay there). It must be called before
// StartCaches.
func (f *Ops) RegisterMetrics(reg prometheus.Registerer) error {
	if reg == nil {
		return errors.New("framework: RegisterMetrics: nil registerer")
	}
	if f.backend != nil {
		return errOnBackend
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.metrics != nil {
		if f.metrics.reg == reg {
			return nil
		}
		return ErrMetricsElsewhere
	}
	if f.started {
		return errors.New("framework: RegisterMetrics after StartCaches: metrics must be attached before the caches start")
	}
	m, err := newMetrics(reg, f.caches)
	if err != nil {
		return fmt.Errorf("framework: register metrics: %w", err)
	}
	f.metrics = m
	for _, c := range f.controllers {
		c.attachMetrics(m)
	}
	return nil
}

// NewFactoryForAPIs builds a scheme from the AddToScheme functions of API
// packages and returns a factory on it: what generated group factories
// call. The scheme also knows Kubernetes' built-in kinds (client-go's
// scheme), which a controller's children (ConfigMaps, Secrets,
// Deployments) and related watches need.
func NewFactoryForAPIs(config *rest.Config, opts Options, addToScheme ...func(*runtime.Scheme) error) (*Factory, error) {
	scheme := runtime.NewScheme()
	for _, add := range append([]func(*runtime.Scheme) error{clientgoscheme.AddToScheme}, addToScheme...) {
		if err := add(scheme); err != nil {
			return nil, fmt.Errorf("framework: register API types: %w", err)
		}
	}
	return NewFactory(config, scheme, opts)
}

// Backend serves a factory's kinds from somewhere other than an
// apiserver: pkg/generic/fake's in-memory store. Typed controllers, sets
// of children and finalizers then run on it through the same code as on
// the apiserver; caches and workers are not started (the store is the
// cache, and the fake runs a chain when its test asks).
type Backend interface {
	// Controller returns the shared controller of res (NewManualController).
	Controller(res Resource) (*Controller, error)
	Client(res Resource) (ResourceClient, error)
	Informer(res Resource) (cache.SharedIndexInformer, error)
}

// NewFactoryOn returns a factory whose kinds backend serves.
func NewFactoryOn(scheme *runtime.Scheme, log *logrus.Entry, backend Backend) *Factory {
	return &Factory{log: log, scheme: scheme, backend: backend, controllers: map[cacheKey]*Controller{}}
}

// errOnBackend is what the operations that need an apiserver return on a
// factory made by NewFactoryOn.
var errOnBackend = errors.New("framework: this factory serves an in-memory store (pkg/generic/fake): it has no apiserver, caches or workers to start")

// Clients is the factory's client factory (nil on a Backend).
func (f *Ops) Clients() *ClientFactory { return f.clients }

// Caches is the factory's cache factory (nil on a Backend).
func (f *Ops) Caches() *CacheFactory { return f.caches }

// Client returns a client of res.
func (f *Ops) Client(res Resource) (ResourceClient, error) {
	if f.backend != nil {
		return f.backend.Client(res)
	}
	client, err := f.clients.ForResource(res)
	if err != nil {
		return nil, err // not a non-nil interface holding a nil *Client
	}
	return client, nil
}

// Informer returns the shared informer of res, made on first use.
func (f *Ops) Informer(res Resource) (cache.SharedIndexInformer, error) {
	f.needCache(res)
	if f.backend != nil {
		return f.backend.Informer(res)
	}
	return f.caches.ForResource(res)
}

// CachesAreCurrent tells whether a write is in the caches as soon as it
// returns: true on a Backend, whose store is its cache.
func (f *Ops) CachesAreCurrent() bool { return f.backend != nil }

// SetupErrors returns the registration mistakes recorded so far, joined
// (see SetupError).
func (f *Ops) SetupErrors() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return errors.Join(f.setupErrs...)
}

// Logger is the factory's logger.
func (f *Ops) Logger() *logrus.Entry { return f.log }

// GuardWrites makes h the fallback hold of this factory's clients: see
// ClientFactory.GuardWrites.
func (f *Ops) GuardWrites(h fence.Hold) {
	if f.clients != nil {
		f.clients.GuardWrites(h)
	}
}

// SetFieldManager sets the default field manager of this factory's
// writes: see ClientFactory.SetFieldManager.
func (f *Ops) SetFieldManager(name string) {
	if f.clients != nil {
		f.clients.SetFieldManager(name)
	}
}

// Controller returns the shared controller of res, creating it (and its
// informer) on first use: one per kind and form. A controller created
// while workers run gets workers at once.
func (f *Ops) Controller(res Resource) (*Controller, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if c, ok := f.controllers[res.cacheKey()]; ok {
		return c, nil
	}
	f.needController(res)
	if f.backend != nil {
		c, err := f.backend.Controller(res)
		if err == nil {
			f.controllers[res.cacheKey()] = c
		}
		return c, err
	}
	client, err := f.clients.ForResource(res)
	if err != nil {
		return nil, err
	}
	informer, err := f.caches.forController(res)
	if err != nil {
		return nil, err
	}
	workers := f.opts.Workers
	if n, ok := f.opts.WorkersPerKind[res.GVK]; ok {
		workers = n
	}
	if workers <= 0 {
		workers = DefaultWorkers
	}
	scheme := f.clients.Scheme()
	newObj := func() (runtime.Object, error) { return NewObject(scheme, res) }
	rl := f.opts.RateLimit
	if perKind, ok := f.opts.RateLimitPerKind[res.GVK]; ok {
		rl = perKind
	}
	c, err := newController(res, client, informer, newObj, workers, rl.withDefaults(), f.log, f.metrics, &f.tracer)
	if err != nil {
		return nil, err
	}
	c.timeout = f.opts.ReconcileTimeout
	if perKind, ok := f.opts.ReconcileTimeoutPerKind[res.GVK]; ok {
		c.timeout = perKind
	}
	f.controllers[res.cacheKey()] = c
	if f.gate != nil {
		c.gate.Store(&f.gate)
	}
	if f.workers != nil {
		f.workers.start(c)
	}
	return c, nil
}

// KeyGate admits workers to keys. pkg/start installs one for a sharded
// election group, so that a replica runs handlers only for the keys of the
// shards it holds, each in a context that ends when its shard moves.
type KeyGate interface {
	// Enter returns the context to run key's handlers in, and done, to be
	// called once they have returned; or ok false when this replica may
	// not run key now. A refused key is dropped from the queue: whoever
	// admits it later queues it again (Factory.EnqueueKeys).
	Enter(key string) (ctx context.Context, done func(), ok bool)
}

// GateKeys installs g on every controller of the factory, present and
// future; nil removes it. Install it before StartWorkers.
func (f *Ops) GateKeys(g KeyGate) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.gate = g
	for _, c := range f.controllers {
		if g == nil {
			c.gate.Store(nil)
		} else {
			c.gate.Store(&g)
		}
	}
}

// EnqueueKeys queues, on every controller, the key of each cached object
// for which match is true, at low priority (changes go first), and returns
// how many it queued: a sharded replica queues a shard's keys when the
// shard starts here.
func (f *Ops) EnqueueKeys(match func(key string) bool) int {
	n := 0
	for _, c := range f.controllerList() {
		for _, key := range c.informer.GetStore().ListKeys() {
			if match(key) {
				c.enqueue(key, 0, PriorityLow)
				n++
			}
		}
	}
	return n
}

func (f *Ops) controllerList() []*Controller {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]*Controller, 0, len(f.controllers))
	for _, c := range f.controllers {
		out = append(out, c)
	}
	return out
}

// SetupError records a registration mistake (an invalid handler name, say)
// found where no error can be returned; StartCaches reports it.
func (f *Ops) SetupError(err error) {
	f.mu.Lock()
	f.setupErrs = append(f.setupErrs, err)
	f.mu.Unlock()
}

// StartCaches starts every informer (and those created later) until ctx
// ends, and returns at once: keys queue up as the caches fill; no handler
// runs. It fails, starting nothing, with the registration mistakes recorded
// so far (see SetupError). Calling it again is harmless.
func (f *Ops) StartCaches(ctx context.Context) error {
	f.mu.Lock()
	setupErr := errors.Join(f.setupErrs...)
	f.started = true
	f.mu.Unlock()
	if setupErr != nil {
		return fmt.Errorf("framework: handler registration: %w", setupErr)
	}
	if f.caches == nil {
		return errOnBackend
	}
	f.caches.Start(ctx)
	return nil
}

// WaitForCacheSync waits until every cache has synced and every controller
// has queued the key of every cached object, at most Options.SyncTimeout and
// never past ctx. It returns nil, or a *SyncError naming each kind that did
// not sync with the last list error seen for it; the informers go on trying,
// so calling it again may succeed.
func (f *Ops) WaitForCacheSync(ctx context.Context) error {
	timeout := f.opts.SyncTimeout
	if timeout <= 0 {
		timeout = DefaultSyncTimeout
	}
	if f.caches == nil {
		return errOnBackend
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := f.caches.WaitForCacheSync(ctx, timeout); err != nil {
		return err
	}
	// A synced cache is not yet a full queue: the informer hands its
	// initial list to each controller's event handler asynchronously. Wait
	// for that too, so that a replica that wins the election next has every
	// key queued and starts work without a relist.
	f.mu.Lock()
	queued := make([]cache.DoneChecker, 0, len(f.controllers))
	for _, c := range f.controllers {
		queued = append(queued, c.queued)
	}
	f.mu.Unlock()
	if !cache.WaitFor(ctx, "", queued...) {
		return fmt.Errorf("framework: controllers did not receive their initial objects within %v: %w", timeout, context.Cause(ctx))
	}
	f.mu.Lock()
	synced := f.onSynced
	f.mu.Unlock()
	if synced != nil {
		synced()
	}
	return nil
}

// StartWorkers starts every controller's workers and returns at once. term
// is the leadership term: every handler's context is derived from it, so a
// handler's calls end the moment the term does. Workers stop taking keys
// when term ends or Workers.Stop is called; handlers already running
// finish (see Workers.Wait), with their context still alive after Stop
// until term ends: a graceful stop calls Stop, waits, then ends term. Keys
// not yet taken stay queued for a later StartWorkers. Only one generation
// of workers runs at a time: a call while another generation's term lives
// returns an error.
func (f *Ops) StartWorkers(term context.Context) (*Workers, error) {
	if f.backend != nil {
		return nil, errOnBackend
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.workers != nil && f.workers.term.Err() == nil {
		return nil, errors.New("framework: workers are already running; end the previous StartWorkers context first")
	}
	taking, stop := context.WithCancel(term)
	w := &Workers{term: term, taking: taking, stop: stop}
	if f.onWorking != nil {
		f.onWorking()
	}
	for _, c := range f.controllers {
		w.start(c)
	}
	f.workers = w
	return w, nil
}

// Workers is one generation of workers, started by StartWorkers.
type Workers struct {
	// term is the handlers' context; taking ends when workers must stop
	// taking keys (term's end, or Stop).
	term   context.Context
	taking context.Context
	stop   context.CancelFunc
	wg     sync.WaitGroup

	mu          sync.Mutex
	controllers []*Controller

	// finished is closed when every worker has returned; one goroutine,
	// started by the first Wait, closes it and ends with the workers.
	finishedOnce sync.Once
	finished     chan struct{}
}

func (w *Workers) done() <-chan struct{} {
	w.finishedOnce.Do(func() {
		w.finished = make(chan struct{})
		go func() {
			w.wg.Wait()
			close(w.finished)
		}()
	})
	return w.finished
}

func (w *Workers) start(c *Controller) {
	w.mu.Lock()
	w.controllers = append(w.controllers, c)
	w.mu.Unlock()
	for range c.workers.Load() {
		w.wg.Go(func() { c.runWorker(w.taking, w.term, &w.wg) })
	}
}

// Stop tells the workers to take no more keys; handlers that are running
// go on, with their context alive until the term ends.
func (w *Workers) Stop() { w.stop() }

// Wait blocks until the workers were told to stop (Stop, or the term's
// end) and every handler that was running then has returned, those left
// running past their reconcile timeout included, or until grace has
// passed since it was called; then it names the controllers whose
// handlers are still running, and the calls left past their timeout.
func (w *Workers) Wait(grace time.Duration) error {
	timer := time.NewTimer(grace)
	defer timer.Stop()
	select {
	case <-w.done():
		return nil
	case <-timer.C:
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	var busy []string
	for _, c := range w.controllers {
		if n := c.queue.Processing(); n > 0 {
			line := fmt.Sprintf("%s (%d keys)", c.name, n)
			if overdue := c.overdueCalls(); len(overdue) > 0 {
				line = fmt.Sprintf("%s (%d keys; past their reconcile timeout: %s)", c.name, n, strings.Join(overdue, ", "))
			}
			busy = append(busy, line)
		}
	}
	sort.Strings(busy)
	return fmt.Errorf("framework: handlers still running %v after workers were told to stop: %s", grace, strings.Join(busy, ", "))
}

// Ops is a Factory seen by rein's own packages (start, generic, apply, the
// fake): starting caches and workers, gating keys, guarding writes, making
// controllers. It is the same value as the Factory; the methods are kept off
// the Factory itself so that a user's factory (pkg/framework.Factory, and
// every generated factory that embeds it) shows only what a user calls.
type Ops Factory

// OpsOf returns f's operations.
func OpsOf(f *Factory) *Ops { return (*Ops)(f) }

// RESTConfig is the configuration the factory's clients were made from
// (before rein's transports wrap it): for clients rein does not make,
// such as an event recorder's.
func (f *Factory) RESTConfig() *rest.Config {
	if f.clients == nil {
		return nil
	}
	return f.clients.RESTConfig()
}

// Scheme makes the objects of the factory's kinds.
func (f *Factory) Scheme() *runtime.Scheme { return f.scheme }

// Base returns f itself. A generated factory embeds a *Factory and so
// has Base too: it is how pkg/start finds the engine of any factory
// (start.Starter).
func (f *Factory) Base() *Factory { return f }

// DiscoverResource asks the apiserver how it serves gvk (its plural and
// scope) and returns it as a Resource: for kinds a program learns of at
// run time, served as *unstructured.Unstructured (see
// generic.NewController).
func (f *Factory) DiscoverResource(ctx context.Context, gvk schema.GroupVersionKind) (Resource, error) {
	if f.clients == nil {
		return Resource{}, errOnBackend
	}
	return f.clients.DiscoverResource(ctx, gvk, Unstructured)
}

// Scheme makes the objects of the factory's kinds.
func (f *Ops) Scheme() *runtime.Scheme { return f.scheme }

// Observe has synced called after every WaitForCacheSync that succeeds and
// working as every generation of workers starts (before any of them takes
// a key): the points rein's benchmarks time. Call it before start. working
// runs with the factory locked: it must not call back into it.
func (f *Ops) Observe(synced, working func()) {
	f.mu.Lock()
	f.onSynced, f.onWorking = synced, working
	f.mu.Unlock()
}
