package engine

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/tools/cache"

	"github.com/rein-k8s/rein/internal/partition"
)

// DefaultSyncTimeout bounds WaitForCacheSync when no timeout is given. A
// cache that has not synced by then is almost always a kind the apiserver
// does not serve (a CRD that is not installed) or a missing list/watch
// permission; waiting longer only hides it.
const DefaultSyncTimeout = 2 * time.Minute

// CacheFactory keeps one shared informer per kind and form, shared by
// every controller and every user of the cache, shaped by CacheOptions
// (namespaces, selectors, a transform).
type CacheFactory struct {
	clients *ClientFactory
	opts    CacheOptions

	mu        sync.Mutex
	informers map[cacheKey]*sharedInformer
	// runCtx is set by Start: informers created later start at once.
	runCtx context.Context
	wg     sync.WaitGroup

	// lag names the caches a new hold waits for (freshness.go).
	lag cacheLag

	// partition, when set, partitions the caches of controllers' kinds
	// among a sharded group's replicas (Ops.Partition).
	partition *partitionSpec
}

// partitionSpec is how a factory partitions its controllers' kinds.
type partitionSpec struct {
	field string // partition.ByUID or ByNamespace
	n     int
	// fallback reports, once per kind, that the apiserver ignores shard
	// selectors and the kind is cached in full.
	fallback func(res Resource)
}

// cacheKey names one cache: a kind in one form.
type cacheKey struct {
	gvk  schema.GroupVersionKind
	form Form
}

func (r Resource) cacheKey() cacheKey { return cacheKey{r.GVK, r.Form} }

type sharedInformer struct {
	res      Resource
	informer cache.SharedIndexInformer
	started  bool
	// startedAt is when the informer started, for "not synced after".
	startedAt time.Time

	// changes wakes a hold waiting for this cache to catch up
	// (freshness.go) at each of its events.
	changes changeSignal
	// partitioned is informer when it is a partitioned cache, else nil.
	partitioned *partitionedInformer

	mu      sync.Mutex
	lastErr error // the last list/watch error, named in sync timeouts
}

// CacheOptions shape a CacheFactory's caches.
type CacheOptions struct {
	// Namespace limits the caches of namespaced kinds to one namespace;
	// "" caches all namespaces.
	Namespace string
	// Namespaces limits the caches of namespaced kinds to several
	// namespaces (one list and watch each); nil leaves it to Namespace.
	// Set one of the two.
	Namespaces []string
	// KeepManagedFields keeps metadata.managedFields in cached objects.
	// By default they are dropped as objects enter the cache: handlers
	// rarely read them, and they are often the largest part of an
	// object's metadata. An update of a cached object still keeps them on
	// the server, since an update without managedFields leaves them as
	// they are.
	KeepManagedFields bool
	// PerKind shapes the caches of single kinds (every form of the kind).
	PerKind map[schema.GroupVersionKind]KindCache
}

// KindCache shapes the cache of one kind. The zero value changes nothing.
//
// What a cache leaves out, its controller never sees: an object that stops
// matching the selectors leaves the cache as if deleted (its OnChange
// handlers run with nil; an OnRemove handler's finalizer stays on it, and
// the handler runs only once it matches again), and handlers see objects
// as the transform left them. A handler that writes an object whose fields the transform
// dropped must patch the fields it means to change: an update would write
// the dropped fields away.
type KindCache struct {
	// Namespaces replaces the factory's namespaces for this kind: one
	// or more namespaces, or {""} for all of them. Cluster-scoped kinds
	// ignore it.
	Namespaces []string
	// Labels, when set, caches only objects whose labels it selects; the
	// apiserver filters, so the others are neither sent nor kept.
	Labels labels.Selector
	// Fields, when set, caches only objects whose fields it selects (the
	// fields the apiserver can select on for the kind: metadata.name,
	// metadata.namespace, and a few per kind, e.g. spec.nodeName of
	// Pods; another is named in the cache's sync error).
	Fields fields.Selector
	// Transform, when set, changes each object before it enters the cache
	// (after managedFields are dropped, unless kept): drop what handlers
	// never read, to keep memory low. It receives the object the
	// apiserver sent, in the cache's form, and returns what to keep,
	// which may be the same object changed in place. It must not fail on
	// an object it transformed before. A handler still gets a private
	// copy of the result.
	Transform cache.TransformFunc
}

// validate names every mistake of the options at once.
func (o CacheOptions) validate() error {
	var errs []error
	if o.Namespace != "" && o.Namespaces != nil {
		errs = append(errs, errors.New("set Namespace or Namespaces, not both"))
	}
	if o.Namespaces != nil {
		if err := validNamespaces(o.Namespaces); err != nil {
			errs = append(errs, fmt.Errorf("field Namespaces: %w", err))
		}
	} else if o.Namespace != "" {
		if err := validNamespaces([]string{o.Namespace}); err != nil {
			errs = append(errs, fmt.Errorf("field Namespace: %w", err))
		}
	}
	gvks := make([]schema.GroupVersionKind, 0, len(o.PerKind))
	for gvk := range o.PerKind {
		gvks = append(gvks, gvk)
	}
	sort.Slice(gvks, func(i, j int) bool { return gvks[i].String() < gvks[j].String() })
	for _, gvk := range gvks {
		kc := o.PerKind[gvk]
		if gvk.Kind == "" || gvk.Version == "" {
			errs = append(errs, fmt.Errorf("PerKind[%s]: name the kind's version and kind", gvk))
		}
		if kc.Namespaces != nil {
			if err := validNamespaces(kc.Namespaces); err != nil {
				errs = append(errs, fmt.Errorf("PerKind[%s].Namespaces: %w", gvk, err))
			}
		}
	}
	return errors.Join(errs...)
}

// validNamespaces checks a namespace list: names, no repeats, and "" (all
// namespaces) only alone.
func validNamespaces(names []string) error {
	if len(names) == 0 {
		return errors.New(`empty: name one or more namespaces, or {""} for all of them`)
	}
	seen := map[string]bool{}
	for _, ns := range names {
		if ns == "" {
			if len(names) > 1 {
				return errors.New(`"" (all namespaces) cannot be listed with other namespaces`)
			}
			continue
		}
		if msgs := validation.IsDNS1123Label(ns); len(msgs) > 0 {
			return fmt.Errorf("%q is not a namespace name: %s", ns, strings.Join(msgs, "; "))
		}
		if seen[ns] {
			return fmt.Errorf("namespace %q is listed twice", ns)
		}
		seen[ns] = true
	}
	return nil
}

// newCacheFactory returns a cache factory, or the mistakes of opts.
func newCacheFactory(clients *ClientFactory, opts CacheOptions) (*CacheFactory, error) {
	if err := opts.validate(); err != nil {
		return nil, fmt.Errorf("framework: cache options: %w", err)
	}
	return &CacheFactory{clients: clients, opts: opts, informers: map[cacheKey]*sharedInformer{}}, nil
}

// DropManagedFields is a cache transform that drops metadata.managedFields:
// the caches' own unless CacheOptions.KeepManagedFields is set. Tombstones
// (cache.DeletedFinalStateUnknown) pass unchanged: their object went
// through the transform when it entered the cache.
func DropManagedFields(obj any) (any, error) {
	if m, ok := obj.(metav1.Object); ok && m.GetManagedFields() != nil {
		m.SetManagedFields(nil)
	}
	return obj, nil
}

// OnEveryEvent is an event handler that calls f with the object of every
// add, update (the new object) and delete (a tombstone's last known state
// of the object).
func OnEveryEvent(f func(obj any)) cache.ResourceEventHandlerFuncs {
	each := func(obj any) {
		if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
			obj = tomb.Obj
		}
		f(obj)
	}
	return cache.ResourceEventHandlerFuncs{AddFunc: each, UpdateFunc: func(_, obj any) { each(obj) }, DeleteFunc: each}
}

// OnEveryEventWithPriority is OnEveryEvent that also tells f the priority
// the event's work deserves, as a controller queues its own keys: low for
// an object of the initial list and for an update that changed nothing,
// high for a change.
func OnEveryEventWithPriority(f func(obj any, p Priority)) cache.ResourceEventHandler {
	unwrap := func(obj any) any {
		if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
			return tomb.Obj
		}
		return obj
	}
	return cache.ResourceEventHandlerDetailedFuncs{
		AddFunc:    func(obj any, initial bool) { f(obj, addPriority(initial)) },
		UpdateFunc: func(old, obj any) { f(obj, updatePriority(old, obj)) },
		DeleteFunc: func(obj any) { f(unwrap(obj), PriorityHigh) },
	}
}

// namespacesOf returns the namespaces res is cached in: {""} for all (and
// for cluster-scoped kinds).
func (f *CacheFactory) namespacesOf(res Resource) []string {
	if !res.Namespaced {
		return []string{""}
	}
	if kc, ok := f.opts.PerKind[res.GVK]; ok && kc.Namespaces != nil {
		return kc.Namespaces
	}
	if f.opts.Namespaces != nil {
		return f.opts.Namespaces
	}
	return []string{f.opts.Namespace}
}

// selectorsOf returns what sets the label and field selectors of res's
// cache (KindCache) on a list or watch.
func (f *CacheFactory) selectorsOf(res Resource) func(opts *metav1.ListOptions) {
	kc := f.opts.PerKind[res.GVK]
	return func(opts *metav1.ListOptions) {
		if kc.Labels != nil && !kc.Labels.Empty() {
			opts.LabelSelector = kc.Labels.String()
		}
		if kc.Fields != nil && !kc.Fields.Empty() {
			opts.FieldSelector = kc.Fields.String()
		}
	}
}

// transformOf returns the transform of res's cache, or nil for none.
func (f *CacheFactory) transformOf(res Resource) cache.TransformFunc {
	user := f.opts.PerKind[res.GVK].Transform
	switch {
	case f.opts.KeepManagedFields:
		return user
	case user == nil:
		return DropManagedFields
	}
	return func(obj any) (any, error) {
		obj, _ = DropManagedFields(obj)
		return user(obj)
	}
}

// ForResource returns the shared informer of res, creating it on first use.
func (f *CacheFactory) ForResource(res Resource) (cache.SharedIndexInformer, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if si, ok := f.informers[res.cacheKey()]; ok {
		return si.informer, nil
	}
	return f.newInformerLocked(res, false)
}

// forController returns the shared informer of a controller's kind: a
// partitioned one when the factory partitions its controllers' kinds
// (Ops.Partition).
func (f *CacheFactory) forController(res Resource) (cache.SharedIndexInformer, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	si, ok := f.informers[res.cacheKey()]
	switch {
	case ok && f.partition != nil && si.partitioned == nil:
		return nil, fmt.Errorf("framework: %s is cached in full already (a related watch or a lister asked for it first), so its controller cannot have a partitioned cache: register the controller first", res)
	case ok:
		return si.informer, nil
	}
	return f.newInformerLocked(res, f.partition != nil)
}

// newInformerLocked makes the shared informer of res: one list and watch
// per namespace, or, partitioned, that per held shard (partitioned.go).
func (f *CacheFactory) newInformerLocked(res Resource, partitioned bool) (cache.SharedIndexInformer, error) {
	client, err := f.clients.ForResource(res)
	if err != nil {
		return nil, err
	}
	scheme := f.clients.Scheme()
	example, err := NewObject(scheme, res)
	if err != nil {
		return nil, fmt.Errorf("framework: %w", err)
	}
	selectors := f.selectorsOf(res)
	// informerOf makes the informer of one namespace, of the objects a
	// shard selector picks ("" for all).
	informerOf := func(namespace, shardSelector string) cache.SharedIndexInformer {
		lw := &cache.ListWatch{
			ListWithContextFunc: func(ctx context.Context, opts metav1.ListOptions) (runtime.Object, error) {
				list, err := NewList(scheme, res)
				if err != nil {
					return nil, err
				}
				selectors(&opts)
				opts.ShardSelector = shardSelector
				return list, client.List(ctx, namespace, opts, list)
			},
			WatchFuncWithContext: func(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error) {
				selectors(&opts)
				opts.ShardSelector = shardSelector
				return client.Watch(ctx, namespace, opts)
			},
		}
		return cache.NewSharedIndexInformer(lw, example, 0, cache.Indexers{
			cache.NamespaceIndex: cache.MetaNamespaceIndexFunc,
		})
	}
	namespaces := f.namespacesOf(res)
	selected := func(shardSelector string) cache.SharedIndexInformer {
		if len(namespaces) == 1 {
			return informerOf(namespaces[0], shardSelector)
		}
		return newNamespacesInformer(namespaces, func(ns string) cache.SharedIndexInformer { return informerOf(ns, shardSelector) })
	}
	var informer cache.SharedIndexInformer
	var pinf *partitionedInformer
	if partitioned {
		spec := f.partition
		probe := func(ctx context.Context) (bool, error) {
			return partition.Probe(ctx, spec.field, func(ctx context.Context, opts metav1.ListOptions) (metav1.ListMeta, error) {
				list, err := NewList(scheme, res)
				if err != nil {
					return metav1.ListMeta{}, err
				}
				selectors(&opts)
				if err := client.List(ctx, namespaces[0], opts, list); err != nil {
					return metav1.ListMeta{}, err
				}
				lm, err := meta.ListAccessor(list)
				if err != nil {
					return metav1.ListMeta{}, err
				}
				return metav1.ListMeta{ResourceVersion: lm.GetResourceVersion(), ShardInfo: shardInfoOf(list)}, nil
			})
		}
		pinf = newPartitionedInformer(spec.field, spec.n, func(s int) cache.SharedIndexInformer {
			return selected(partition.Selector(spec.field, []int{s}, spec.n))
		}, probe, func() { spec.fallback(res) })
		informer = pinf
	} else {
		informer = selected("")
	}
	if transform := f.transformOf(res); transform != nil {
		if err := informer.SetTransform(transform); err != nil {
			return nil, fmt.Errorf("framework: informer for %s: %w", res, err)
		}
	}
	si := &sharedInformer{res: res, informer: informer, partitioned: pinf}
	if _, err := informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { si.changes.changed() },
		UpdateFunc: func(_, _ any) { si.changes.changed() },
		DeleteFunc: si.changes.gone,
	}); err != nil {
		return nil, fmt.Errorf("framework: informer for %s: %w", res, err)
	}
	if err := informer.SetWatchErrorHandlerWithContext(func(_ context.Context, _ *cache.Reflector, err error) {
		si.mu.Lock()
		si.lastErr = err
		si.mu.Unlock()
	}); err != nil {
		return nil, fmt.Errorf("framework: informer for %s: %w", res, err)
	}
	f.informers[res.cacheKey()] = si
	if f.runCtx != nil {
		f.startLocked(si)
	}
	return informer, nil
}

// shardInfoOf returns the shardInfo of a list, typed or unstructured.
func shardInfoOf(list runtime.Object) *metav1.ShardInfo {
	switch l := list.(type) {
	case interface{ GetShardInfo() *metav1.ShardInfo }:
		return l.GetShardInfo()
	case *unstructured.UnstructuredList:
		if sel, ok, _ := unstructured.NestedString(l.Object, "metadata", "shardInfo", "selector"); ok {
			return &metav1.ShardInfo{Selector: sel}
		}
	}
	return nil
}

// Start runs every informer created so far, and every one created later,
// until ctx ends. It does not wait for them to sync.
func (f *CacheFactory) Start(ctx context.Context) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.runCtx = ctx
	for _, si := range f.informers {
		f.startLocked(si)
	}
}

func (f *CacheFactory) startLocked(si *sharedInformer) {
	if si.started {
		return
	}
	si.started = true
	si.startedAt = time.Now()
	ctx := f.runCtx
	f.wg.Go(func() { si.informer.RunWithContext(ctx) })
}

// startedInformers returns the informers Start has started.
func (f *CacheFactory) startedInformers() []*sharedInformer {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]*sharedInformer, 0, len(f.informers))
	for _, si := range f.informers {
		if si.started {
			out = append(out, si)
		}
	}
	return out
}

// Wait blocks until every informer goroutine started by Start has returned
// (after Start's ctx ended).
func (f *CacheFactory) Wait() { f.wg.Wait() }

// SyncError reports the kinds whose caches did not sync in time, each with
// the last list/watch error seen for it.
type SyncError struct {
	// Timeout is how long this wait lasted (at most the timeout asked
	// for); Waited is how long the oldest
	// of the kinds has been trying since its informer started.
	Timeout, Waited time.Duration
	NotSynced       map[Resource]error
}

func (e *SyncError) Error() string {
	var parts []string
	for res, err := range e.NotSynced {
		part := res.String() + " (" + res.GVK.Kind + ")"
		if err != nil {
			part += ": " + err.Error() + ": " + syncHint(res, err)
		} else {
			part += ": no list answered yet (the apiserver is slow, or the list is large)"
		}
		parts = append(parts, part)
	}
	sort.Strings(parts)
	waited := e.Waited
	if waited < e.Timeout {
		waited = e.Timeout
	}
	return fmt.Sprintf("caches not synced after %v: %s", waited.Round(100*time.Millisecond), strings.Join(parts, "; "))
}

// syncHint says, for the last list/watch error of a kind, what is wrong
// and what to do: an apiserver that cannot be reached, a certificate that
// is not trusted, credentials refused, RBAC, or a resource not served.
func syncHint(res Resource, err error) string {
	var status apierrors.APIStatus
	var unknownCA x509.UnknownAuthorityError
	var hostname x509.HostnameError
	var invalid x509.CertificateInvalidError
	var netErr net.Error
	var opErr *net.OpError
	var dnsErr *net.DNSError
	switch {
	case apierrors.IsUnauthorized(err):
		return "the apiserver refused the credentials (401): check the user of the kubeconfig (token, client certificate) or the service account"
	case apierrors.IsForbidden(err):
		return fmt.Sprintf("RBAC forbids it (403): grant list and watch on %s to this user or service account", res.String())
	case apierrors.IsBadRequest(err) && (strings.Contains(err.Error(), "field selector") || strings.Contains(err.Error(), "field label")):
		return fmt.Sprintf("the field selector of this cache (KindCache.Fields) names a field the apiserver cannot select %s by: select on metadata.name, metadata.namespace, or a field the kind supports", res.String())
	case apierrors.IsNotFound(err):
		return fmt.Sprintf("the apiserver does not serve %s (404): install its CRD (or check the group, version and plural)", res.String())
	case errors.As(err, &unknownCA), errors.As(err, &hostname), errors.As(err, &invalid), strings.Contains(err.Error(), "x509:"), strings.Contains(err.Error(), "tls:"):
		return "TLS failed: the apiserver's certificate is not trusted by this configuration (check certificate-authority data and the server address)"
	case errors.As(err, &dnsErr):
		return "the apiserver's host name does not resolve: check the server address of the kubeconfig"
	case errors.Is(err, syscall.ECONNREFUSED), errors.As(err, &opErr) && opErr.Op == "dial":
		return "the apiserver cannot be reached (nothing listens at that address): check the server address of the kubeconfig, and that the apiserver runs"
	case errors.As(err, &netErr) && netErr.Timeout():
		return "the apiserver did not answer in time: check the network path to it"
	case errors.As(err, &status):
		return fmt.Sprintf("the apiserver answered %d", status.Status().Code)
	}
	return "check that the apiserver is reachable, that RBAC allows list and watch, and that the CRD is installed"
}

// WaitForCacheSync waits until every started informer has synced, at most
// timeout (DefaultSyncTimeout when 0) and never past ctx. It returns nil or
// a *SyncError naming every kind that did not sync.
func (f *CacheFactory) WaitForCacheSync(ctx context.Context, timeout time.Duration) error {
	if timeout <= 0 {
		timeout = DefaultSyncTimeout
	}
	f.mu.Lock()
	var pending []*sharedInformer
	for _, si := range f.informers {
		if si.started {
			pending = append(pending, si)
		}
	}
	f.mu.Unlock()

	began := time.Now()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	// Wait on the informers' done channels, not by polling (client-go's
	// WaitForCacheSync polls every 100ms): readiness, and a standby's
	// first campaign, follow the sync at once.
	synced := make([]cache.DoneChecker, len(pending))
	for i, si := range pending {
		synced[i] = si.informer.HasSyncedChecker()
	}
	if cache.WaitFor(ctx, "", synced...) {
		return nil
	}
	// The wait may have ended before timeout, by ctx's own deadline: say
	// how long it really lasted.
	failed := &SyncError{Timeout: time.Since(began), NotSynced: map[Resource]error{}}
	for _, si := range pending {
		if !si.informer.HasSynced() {
			si.mu.Lock()
			failed.NotSynced[si.res] = si.lastErr
			si.mu.Unlock()
			failed.Waited = max(failed.Waited, time.Since(si.startedAt))
		}
	}
	if len(failed.NotSynced) == 0 {
		// All synced in the last instant.
		return nil
	}
	// client-go retries a refused connection inside one list call, so a
	// kind can wait long with no error recorded yet: try the apiserver's
	// address directly, so that the error names what is wrong at once.
	if dialErr := f.probeAPIServer(); dialErr != nil {
		for res, err := range failed.NotSynced {
			if err == nil {
				failed.NotSynced[res] = dialErr
			}
		}
	}
	if errors.Is(context.Cause(ctx), context.Canceled) {
		return fmt.Errorf("framework: waiting for caches: %w", ctx.Err())
	}
	return failed
}

// probeAPIServer dials the apiserver's address once (TCP, 2s at most) and
// returns the error when that fails; nil when it answers or the address is
// not a plain host:port (a proxy, a socket).
func (f *CacheFactory) probeAPIServer() error {
	if f.clients == nil {
		return nil
	}
	host := f.clients.config.Host
	u, err := url.Parse(host)
	if err != nil || u.Host == "" {
		u, err = url.Parse("https://" + host)
		if err != nil || u.Host == "" {
			return nil
		}
	}
	if f.clients.config.Proxy != nil || f.clients.config.Dial != nil {
		return nil
	}
	addr := u.Host
	if u.Port() == "" {
		port := "443"
		if u.Scheme == "http" {
			port = "80"
		}
		addr = net.JoinHostPort(u.Hostname(), port)
	}
	conn, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return fmt.Errorf("the apiserver %s: %w", host, err)
	}
	_ = conn.Close()
	return nil
}

// objectCounts reports the number of cached objects per kind, for metrics.
// A kind cached in two forms counts both.
func (f *CacheFactory) objectCounts() map[schema.GroupVersionKind]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	counts := make(map[schema.GroupVersionKind]int, len(f.informers))
	for key, si := range f.informers {
		counts[key.gvk] += len(si.informer.GetStore().ListKeys())
	}
	return counts
}
