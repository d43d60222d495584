package engine

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/cache"
)

// chainHandler is a handler as the engine runs it: with the context of the
// worker, so that the engine's own writes (finalizers) outlive the end of a
// term for as long as the drain grace allows, but no longer.
type chainHandler func(ctx context.Context, key string, obj runtime.Object) (runtime.Object, error)

// Controller is the shared controller of one kind: one queue of keys fed by
// the kind's shared informer, one handler chain, and workers that run while
// StartWorkers' context lives. It is created by Factory.Controller.
type Controller struct {
	name     string
	res      Resource
	client   ResourceClient
	informer cache.SharedIndexInformer
	queue    *keyQueue
	// enqueue queues a key after a delay at a priority: the queue's
	// AddWithPriority, or the callback of a manual controller.
	enqueue func(key string, after time.Duration, p Priority)
	log     *logrus.Entry
	metrics *metrics
	// reconciles is the controller's series of the reconcile metrics
	// (nil: none).
	reconciles *controllerMetrics
	newObj     func() (runtime.Object, error)
	// tracer is the factory's (see tracing.go); spanName names the span
	// of a run of a key.
	tracer   *atomic.Pointer[tracer]
	spanName string

	workers atomic.Int32
	// timeout bounds each handler call of a worker's run; 0: none (see
	// timeout.go). Set before any worker starts.
	timeout time.Duration
	// overdue maps the keys whose handler call was left running past its
	// timeout to that handler's name, until the call returns.
	overdue sync.Map
	// queued is done once the informer has handed this controller every
	// object of its initial list, i.e. the queue holds every key.
	queued cache.DoneChecker

	mu       sync.Mutex
	nextID   uint64
	handlers atomic.Pointer[[]handlerEntry]
	// gate, when set, admits workers to keys (Factory.GateKeys).
	gate atomic.Pointer[KeyGate]
	// forced holds keys queued explicitly (Enqueue, EnqueueAfter,
	// RequeueAfter): their next run skips no IgnoreStatus handler.
	forced sync.Map

	// vanished holds, per key, the last states of objects deleted past
	// a remove handler's finalizer (see vanished.go); guarded by vmu.
	vmu      sync.Mutex
	vanished map[string][]*vanishedObject
}

func newController(res Resource, client ResourceClient, informer cache.SharedIndexInformer, newObj func() (runtime.Object, error), workers int, rl RateLimit, log *logrus.Entry, m *metrics, t *atomic.Pointer[tracer]) (*Controller, error) {
	name := res.String()
	if t == nil {
		t = new(atomic.Pointer[tracer]) // traces nothing
	}
	c := &Controller{
		name:     name,
		tracer:   t,
		spanName: "reconcile " + name,
		res:      res,
		client:   client,
		informer: informer,
		queue:    newKeyQueue(name, rl, nil),
		log:      log.WithField("controller", name),
		newObj:   newObj,
		vanished: map[string][]*vanishedObject{},
	}
	c.enqueue = c.queue.AddWithPriority
	c.workers.Store(int32(workers))
	c.attachMetrics(m)
	c.handlers.Store(&[]handlerEntry{})
	// Every event only queues a key: the queue deduplicates, and workers
	// read the newest state from the cache when they get to it. Changes
	// go ahead of the initial list's keys (see eventPriority).
	reg, err := informer.AddEventHandler(cache.ResourceEventHandlerDetailedFuncs{
		AddFunc: func(obj any, initial bool) { c.enqueueObject(obj, addPriority(initial)) },
		UpdateFunc: func(old, obj any) {
			c.enqueueObject(obj, updatePriority(old, obj))
		},
		DeleteFunc: func(obj any) {
			c.noteVanished(obj)
			c.enqueueObject(obj, PriorityHigh)
		},
	})
	if err != nil {
		return nil, fmt.Errorf("framework: controller %s: %w", name, err)
	}
	c.queued = reg.HasSyncedChecker()
	return c, nil
}

// ManualConfig is what NewManualController needs.
type ManualConfig struct {
	// Resource is the kind served.
	Resource Resource
	// Client serves the controller's own requests: the live read and the
	// finalizer patches of OnRemove handlers.
	Client ResourceClient
	// Informer's store holds the objects Process hands to handlers. It
	// need not run; while it has not synced, adding a handler queues
	// nothing.
	Informer cache.SharedIndexInformer
	// NewObject returns an empty object of the kind.
	NewObject func() (runtime.Object, error)
	// Enqueue receives every key the controller is asked to queue
	// (Enqueue, EnqueueAfter, enqueueAll, informer events); nil drops
	// them.
	Enqueue func(key string, after time.Duration)
	// Logger is where handlers log (see Logger); nil means logrus's
	// standard logger.
	Logger *logrus.Entry
}

// NewManualController returns a controller whose handler chain runs only
// when Process is called: no worker takes its keys, and the keys it is
// asked to queue go to cfg.Enqueue. Handlers are added to it, OnRemove
// finalizers included, exactly as to a factory's controller. It is how
// pkg/generic/fake runs a controller's real chain on an in-memory store in
// unit tests; programs get their controllers from Factory.Controller.
func NewManualController(cfg ManualConfig) (*Controller, error) {
	if cfg.Client == nil || cfg.Informer == nil || cfg.NewObject == nil {
		return nil, errors.New("framework: NewManualController: Client, Informer and NewObject are required")
	}
	if err := cfg.Resource.validate(); err != nil {
		return nil, fmt.Errorf("framework: %w", err)
	}
	log := cfg.Logger
	if log == nil {
		log = logrus.NewEntry(logrus.StandardLogger())
	}
	c, err := newController(cfg.Resource, cfg.Client, cfg.Informer, cfg.NewObject, 1, RateLimit{}.withDefaults(), log, nil, nil)
	if err != nil {
		return nil, err
	}
	c.enqueue = func(string, time.Duration, Priority) {}
	if cfg.Enqueue != nil {
		c.enqueue = func(key string, after time.Duration, _ Priority) { cfg.Enqueue(key, after) }
	}
	return c, nil
}

// attachMetrics makes c and its queue report to m (nil: nothing). It runs
// before the caches start, when nothing reads the fields yet.
func (c *Controller) attachMetrics(m *metrics) {
	if m == nil {
		return
	}
	c.metrics = m
	c.reconciles = m.reconcile.forController(c.name, int(c.workers.Load()))
	c.queue.setMetrics(m.queueMetrics(c.name))
	m.trackQueue(c.name, c.queue)
}

// Name is the controller's name: the resource, e.g. "configmaps" or
// "virtualmachines.vm.rein.dev".
func (c *Controller) Name() string { return c.name }

// Resource is the kind this controller serves.
func (c *Controller) Resource() Resource { return c.res }

// Client is the controller's client (a factory's writes pass its guard).
func (c *Controller) Client() ResourceClient { return c.client }

// RateLimit is how this controller's queue paces retries (Options.RateLimit
// or Options.RateLimitPerKind, defaults filled in).
func (c *Controller) RateLimit() RateLimit { return c.queue.limits }

// Informer is the kind's shared informer.
func (c *Controller) Informer() cache.SharedIndexInformer { return c.informer }

func (c *Controller) enqueueObject(obj any, p Priority) {
	key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj)
	if err != nil {
		c.log.WithError(err).Warn("cannot compute the key of an object; it is not queued")
		return
	}
	c.enqueue(key, 0, p)
}

// addPriority is the priority of an informer's Add event: low for an
// object of the initial list (a start queues every cached key: no change
// in it), high for an object created since.
func addPriority(initial bool) Priority {
	if initial {
		return PriorityLow
	}
	return PriorityHigh
}

// updatePriority is the priority of an informer's Update event: low when
// the object's resourceVersion did not move (a resync, or a relist that
// found it unchanged), high for a change.
func updatePriority(old, obj any) Priority {
	o, err1 := meta.Accessor(old)
	n, err2 := meta.Accessor(obj)
	if err1 == nil && err2 == nil && o.GetResourceVersion() == n.GetResourceVersion() {
		return PriorityLow
	}
	return PriorityHigh
}

// Enqueue queues key ("namespace/name" or "name") for the handler chain at
// high priority; every handler runs on it, IgnoreStatus ones included.
func (c *Controller) Enqueue(key string) {
	c.EnqueueWithPriority(key, 0, PriorityHigh)
}

// EnqueueAfter queues key after delay, as Enqueue.
func (c *Controller) EnqueueAfter(key string, delay time.Duration) {
	c.EnqueueWithPriority(key, delay, PriorityHigh)
}

// EnqueueWithPriority queues key after delay (0: now) at priority p, as
// Enqueue. A key already queued keeps the higher of its priority and p.
func (c *Controller) EnqueueWithPriority(key string, delay time.Duration, p Priority) {
	c.forced.Store(key, struct{}{})
	c.enqueue(key, delay, p)
}

// enqueueAll queues the key of every cached object, at low priority: none
// of them changed.
func (c *Controller) enqueueAll() {
	for _, key := range c.informer.GetStore().ListKeys() {
		c.enqueue(key, 0, PriorityLow)
	}
}

// QueueLen is the number of keys waiting for a worker.
func (c *Controller) QueueLen() int { return c.queue.Len() }

// AddHandler appends h to the chain under name, until ctx ends. Handlers run
// in registration order. A handler added after the cache has synced gets
// every cached key queued, so it sees every existing object.
func (c *Controller) AddHandler(ctx context.Context, name string, h Handler, opts ...HandlerOption) {
	c.addChainHandler(ctx, name, chainHandler(h), opts...)
}

func (c *Controller) addChainHandler(ctx context.Context, name string, h chainHandler, opts ...HandlerOption) {
	if ctx.Err() != nil {
		return
	}
	c.mu.Lock()
	c.nextID++
	entry := handlerEntry{id: c.nextID, name: name, spanName: "handler " + name, fn: h, done: ctx.Done()}
	for _, o := range opts {
		o(&entry)
	}
	old := *c.handlers.Load()
	chain := make([]handlerEntry, len(old), len(old)+1)
	copy(chain, old)
	chain = append(chain, entry)
	c.handlers.Store(&chain)
	c.mu.Unlock()

	// Unregister when ctx ends; AfterFunc runs that in its own goroutine
	// only then, so nothing waits in between.
	context.AfterFunc(ctx, func() { c.removeHandler(entry.id) })

	if c.informer.HasSynced() {
		c.enqueueAll()
	}
}

// HandlerNames lists the registered handlers in chain order.
func (c *Controller) HandlerNames() []string {
	chain := *c.handlers.Load()
	names := make([]string, len(chain))
	for i, e := range chain {
		names[i] = e.name
	}
	return names
}

func (c *Controller) removeHandler(id uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	old := *c.handlers.Load()
	chain := make([]handlerEntry, 0, len(old))
	finalizer := ""
	for _, e := range old {
		if e.id != id {
			chain = append(chain, e)
		} else {
			finalizer = e.finalizer
		}
	}
	c.handlers.Store(&chain)
	if finalizer != "" {
		c.forgetVanishedFinalizer(finalizer, chain)
	}
}

// runWorker processes keys until taking ends or the queue shuts down;
// handlers run with term's context. owner counts the worker's handler
// calls that run in goroutines of their own (a reconcile timeout's).
func (c *Controller) runWorker(taking, term context.Context, owner *sync.WaitGroup) {
	whole := KeyGate(wholeTerm{term}) // made once, not per key
	for c.processNext(taking, whole, owner) {
	}
}

// processNext runs one key under the controller's gate, or whole when it
// has none.
func (c *Controller) processNext(taking context.Context, whole KeyGate, owner *sync.WaitGroup) bool {
	key, ok := c.queue.Get(taking)
	if !ok {
		return false
	}
	// A value, not closures: releasing a key allocates nothing.
	run := keyRun{owner: owner, key: key}
	c.reconciles.working(1)
	defer c.reconciles.working(-1)
	defer c.finish(&run)
	// Leadership can end between Get and here: keep the key for the next
	// term, at its priority (it is queued again when Done runs), and
	// write nothing.
	if taking.Err() != nil {
		c.queue.Requeue(key)
		return false
	}
	// One path for both kinds of hold: a single leader's term is the gate
	// that admits every key under the term (the one-shard case); a
	// sharded group's gate admits the keys of the shards held here, each
	// under its shard.
	gate := whole
	if g := c.gate.Load(); g != nil {
		gate = *g
	}
	ctx, done, ok := c.enter(gate, key)
	if !ok {
		// Not this replica's key now: drop it. The gate's owner queues it
		// again when it is (a shard that starts here queues all of its
		// keys). An object that vanished is the owner's to clean up.
		c.queue.Forget(key)
		c.dropVanished(key)
		return true
	}
	run.done = done
	c.process(ctx, key, &run)
	return true
}

// enter admits a worker to key through gate: by the shard of its object
// when the controller's cache is partitioned and the gate admits by shard
// (a key's shard is then its object's, which only the cache knows; a key
// whose object this replica does not cache belongs to another replica).
func (c *Controller) enter(gate KeyGate, key string) (context.Context, func(), bool) {
	p, partitioned := c.informer.(*partitionedInformer)
	sg, byShard := gate.(ShardGate)
	if !partitioned || !byShard {
		return gate.Enter(key)
	}
	s, ok := p.ShardOfKey(key)
	if !ok {
		return nil, nil, false
	}
	return sg.EnterShard(s)
}

// ShardGate is a KeyGate that also admits workers by shard: a controller
// whose cache is partitioned (Ops.Partition) enters by the shard of the
// key's object, from its UID or namespace, rather than by the key.
type ShardGate interface {
	KeyGate
	EnterShard(shard int) (ctx context.Context, done func(), ok bool)
}

// wholeTerm is the gate of workers that hold every key for one term: a
// single leader's (the workers' own context).
type wholeTerm struct{ term context.Context }

func (w wholeTerm) Enter(string) (context.Context, func(), bool) { return w.term, func() {}, true }

func (c *Controller) process(ctx context.Context, key string, run *keyRun) {
	began := time.Now()
	t := c.tracer.Load()
	ctx, span := c.startReconcile(ctx, t, key)
	obj, err := c.cached(key)
	if err != nil {
		endReconcile(span, chainResult{}, err)
		c.log.WithError(err).WithField("key", key).Error("cache lookup failed; retrying")
		c.reconciles.reconciled(began, &chainResult{errs: []*HandlerError{{Controller: c.name, Key: key, Err: err}}})
		c.queue.AddRateLimited(key)
		return
	}
	_, forced := c.forced.LoadAndDelete(key)
	res := c.runChain(ctx, t, key, obj, forced, run)
	c.reconciles.reconciled(began, &res)
	endReconcile(span, res, nil)
	if len(res.errs) > 0 {
		for _, e := range res.errs {
			c.logHandlerError(ctx, e)
		}
		if forced && res.notRun {
			c.forced.Store(key, struct{}{}) // the retry is still the explicit run
		}
		c.queue.AddRateLimited(key)
		return
	}
	c.queue.Forget(key)
	if res.requeueAfter > 0 {
		c.forced.Store(key, struct{}{}) // asked for: every handler runs
		// Low: a periodic look at a key is no change a user waits on.
		c.queue.AddWithPriority(key, res.requeueAfter, PriorityLow)
		return
	}
	if p, ok := c.informer.(*partitionedInformer); ok && obj == nil {
		// The deleted object's handlers are done: its key no longer
		// needs the shard it had.
		p.Forget(key)
	}
}

// cached returns a private copy of the cached object of key, or nil when
// the cache has none. Handlers get their own copy: the cached object is
// shared with every reader and must never change under them.
func (c *Controller) cached(key string) (runtime.Object, error) {
	item, exists, err := c.informer.GetIndexer().GetByKey(key)
	if err != nil || !exists {
		return nil, err
	}
	obj, ok := item.(runtime.Object)
	if !ok {
		return nil, fmt.Errorf("controller %s: cached %T is not a runtime.Object", c.name, item)
	}
	return obj.DeepCopyObject(), nil
}

// Process runs the handler chain once on key, with ctx as the handlers'
// context, exactly as a worker does (the remove handlers' finalizers
// first, see AddRemoveHandler), and reports how it ended instead of
// queueing the key again: err joins the failures of the handlers (each a
// *HandlerError, a panic included; a failure to add the finalizers is
// one of the remove handlers whose finalizers are missing, and then no
// handler ran), and requeueAfter is the delay a
// handler asked for with RequeueAfter when none failed (a failure is
// retried with backoff instead), 0 when none asked. No reconcile timeout
// applies: ctx bounds the handlers. It is how a manual
// controller (NewManualController) is driven; on a factory's controller,
// never call it on a key its workers may be processing.
func (c *Controller) Process(ctx context.Context, key string) (requeueAfter time.Duration, err error) {
	obj, err := c.cached(key)
	if err != nil {
		return 0, fmt.Errorf("controller %s: cache lookup of %s: %w", c.name, key, err)
	}
	res := c.runChain(ctx, c.tracer.Load(), key, obj, true, nil) // an explicit run: no handler is filtered
	if len(res.errs) > 0 {
		errs := make([]error, len(res.errs))
		for i, e := range res.errs {
			errs[i] = e
		}
		return 0, errors.Join(errs...)
	}
	return res.requeueAfter, nil
}

func (c *Controller) logHandlerError(ctx context.Context, e *HandlerError) {
	entry := c.handlerLog(ctx, e.Handler, e.Key)
	switch {
	case e.Panicked:
		entry.WithFields(logrus.Fields{"panic": fmt.Sprint(e.Err), "stack": string(e.Stack)}).Error("handler panicked; retrying with backoff")
	case e.timedOut():
		entry.WithError(e.Err).Error("handler timed out; retrying with backoff")
	case apierrors.IsConflict(e.Err):
		// Someone changed the object since it was read: the retry reads
		// the newer version. Expected in normal operation.
		entry.WithError(e.Err).Debug("conflict; retrying with the newer object")
	default:
		entry.WithError(e.Err).Error("handler failed; retrying with backoff")
	}
}

// runChain runs every handler in order on key, each with the object the
// previous one returned. A failing handler does not stop the chain: the
// handlers of a kind are independent (a cleanup must not wait for an
// unrelated OnChange to succeed), and the key is retried for all of them.
//
// Before any handler runs, a live object gets the finalizer of every
// remove handler of the chain (finalizersFirst); when that fails, no
// handler runs and the key is retried. After the last one, the remove
// handlers run on the objects of key that vanished past their finalizers
// (cleanUpVanished).
//
// run is a worker's run of key, whose handler calls the controller's
// reconcile timeout bounds; nil (Process) runs them directly. A call left
// running past its timeout ends the chain there (see timeout.go). Each
// handler call is a span of t (nil: not traced).
func (c *Controller) runChain(ctx context.Context, t *tracer, key string, obj runtime.Object, forced bool, run *keyRun) chainResult {
	var res chainResult
	chain := *c.handlers.Load()
	if obj != nil {
		held, herr := c.finalizersFirst(ctx, key, obj, chain)
		if herr != nil {
			res.errs, res.notRun = append(res.errs, herr), true
			return res
		}
		obj = held
	}
	current := obj
	var fp fingerprint
	for _, h := range chain {
		if h.filter != nil {
			if obj == nil {
				h.filter.forget(key)
			} else {
				if !fp.done {
					fp = fingerprintOf(obj)
				}
				if !forced && fp.ok && h.filter.unchanged(key, fp.sum) {
					c.metrics.observeHandler(c.name, h.name, resultFiltered, 0)
					continue
				}
			}
		}
		start := time.Now()
		hctx, span := c.startHandler(ctx, t, &h, key)
		out, herr := c.call(hctx, run, h, key, current)
		result := res.take(out, herr)
		switch result {
		case resultSuccess, resultRequeue:
			if out.obj != nil {
				current = out.obj
			}
			h.filter.record(key, fp)
		}
		c.metrics.observeHandler(c.name, h.name, result, time.Since(start))
		endHandler(span, result, out, herr)
		if run != nil && run.left {
			return res
		}
	}
	c.cleanUpVanished(ctx, t, key, chain, &res, run)
	return res
}

// take adds one handler call's outcome to res (its failure, or the delay
// it asked for) and returns the result it is counted as.
func (res *chainResult) take(out handlerOutput, herr *HandlerError) string {
	var requeue *RequeueAfterError
	switch {
	case herr != nil:
		res.errs = append(res.errs, herr)
		if herr.Panicked {
			return resultPanic
		}
		if herr.timedOut() {
			return resultTimeout
		}
		return resultError
	case out.err == nil:
		return resultSuccess
	case errors.Is(out.err, ErrSkip):
		return resultSkip
	case errors.As(out.err, &requeue):
		res.askRequeue(requeue.Delay)
		return resultRequeue
	}
	return resultSuccess
}

type handlerOutput struct {
	obj runtime.Object
	err error // nil, ErrSkip or a *RequeueAfterError
}

// callHandler runs one handler, turning a panic into a HandlerError so that
// one bad object cannot take the process down.
func (c *Controller) callHandler(ctx context.Context, h handlerEntry, key string, obj runtime.Object) (out handlerOutput, herr *HandlerError) {
	defer func() {
		if r := recover(); r != nil {
			herr = &HandlerError{Controller: c.name, Handler: h.name, Key: key, Err: fmt.Errorf("%v", r), Panicked: true, Stack: debug.Stack()}
		}
	}()
	o, err := h.fn(withLogger(ctx, c.handlerLog(ctx, h.name, key)), key, obj)
	var requeue *RequeueAfterError
	if err != nil && !errors.Is(err, ErrSkip) && !errors.As(err, &requeue) {
		return handlerOutput{}, &HandlerError{Controller: c.name, Handler: h.name, Key: key, Err: err}
	}
	return handlerOutput{obj: o, err: err}, nil
}
