package framework

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
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/tools/cache"
)

// DefaultSyncTimeout bounds WaitForCacheSync when no timeout is given. A
// cache that has not synced by then is almost always a kind the apiserver
// does not serve (a CRD that is not installed) or a missing list/watch
// permission; waiting longer only hides it.
const DefaultSyncTimeout = 2 * time.Minute

// CacheFactory keeps one shared informer per kind, scoped to one namespace
// or to all, shared by every controller and every user of the cache.
type CacheFactory struct {
	clients *ClientFactory
	opts    CacheOptions

	mu        sync.Mutex
	informers map[schema.GroupVersionKind]*sharedInformer
	// runCtx is set by Start: informers created later start at once.
	runCtx context.Context
	wg     sync.WaitGroup
}

type sharedInformer struct {
	res      Resource
	informer cache.SharedIndexInformer
	started  bool
	// startedAt is when the informer started, for "not synced after".
	startedAt time.Time

	mu      sync.Mutex
	lastErr error // the last list/watch error, named in sync timeouts
}

// CacheOptions shape a CacheFactory's caches.
type CacheOptions struct {
	// Namespace limits the caches of namespaced kinds to one namespace;
	// "" caches all namespaces.
	Namespace string
	// KeepManagedFields keeps metadata.managedFields in cached objects.
	// By default they are dropped as objects enter the cache: handlers
	// rarely read them, and they are often the largest part of an
	// object's metadata. An update of a cached object still keeps them on
	// the server, since an update without managedFields leaves them as
	// they are.
	KeepManagedFields bool
}

// NewCacheFactory returns a cache factory.
func NewCacheFactory(clients *ClientFactory, opts CacheOptions) *CacheFactory {
	return &CacheFactory{clients: clients, opts: opts, informers: map[schema.GroupVersionKind]*sharedInformer{}}
}

// dropManagedFields is the caches' transform unless managed fields are
// kept. Tombstones (cache.DeletedFinalStateUnknown) pass unchanged: their
// object went through the transform when it entered the cache.
func dropManagedFields(obj any) (any, error) {
	if m, ok := obj.(metav1.Object); ok && m.GetManagedFields() != nil {
		m.SetManagedFields(nil)
	}
	return obj, nil
}

// ForResource returns the shared informer of res, creating it on first use.
func (f *CacheFactory) ForResource(res Resource) (cache.SharedIndexInformer, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if si, ok := f.informers[res.GVK]; ok {
		return si.informer, nil
	}
	client, err := f.clients.ForResource(res)
	if err != nil {
		return nil, err
	}
	listGVK := res.GVK.GroupVersion().WithKind(res.GVK.Kind + "List")
	scheme := f.clients.Scheme()
	if !scheme.Recognizes(listGVK) {
		return nil, fmt.Errorf("framework: list kind %s is not registered in the scheme", listGVK)
	}
	example, err := scheme.New(res.GVK)
	if err != nil {
		return nil, fmt.Errorf("framework: %w", err)
	}
	namespace := f.opts.Namespace
	if !res.Namespaced {
		namespace = ""
	}
	lw := &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, opts metav1.ListOptions) (runtime.Object, error) {
			list, err := scheme.New(listGVK)
			if err != nil {
				return nil, err
			}
			return list, client.List(ctx, namespace, opts, list)
		},
		WatchFuncWithContext: func(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error) {
			return client.Watch(ctx, namespace, opts)
		},
	}
	informer := cache.NewSharedIndexInformer(lw, example, 0, cache.Indexers{
		cache.NamespaceIndex: cache.MetaNamespaceIndexFunc,
	})
	if !f.opts.KeepManagedFields {
		if err := informer.SetTransform(dropManagedFields); err != nil {
			return nil, fmt.Errorf("framework: informer for %s: %w", res, err)
		}
	}
	si := &sharedInformer{res: res, informer: informer}
	if err := informer.SetWatchErrorHandlerWithContext(func(_ context.Context, _ *cache.Reflector, err error) {
		si.mu.Lock()
		si.lastErr = err
		si.mu.Unlock()
	}); err != nil {
		return nil, fmt.Errorf("framework: informer for %s: %w", res, err)
	}
	f.informers[res.GVK] = si
	if f.runCtx != nil {
		f.startLocked(si)
	}
	return informer, nil
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
			part += ": " + err.Error() + ": " + SyncHint(res, err)
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

// SyncHint says, for the last list/watch error of a kind, what is wrong
// and what to do: an apiserver that cannot be reached, a certificate that
// is not trusted, credentials refused, RBAC, or a resource not served.
func SyncHint(res Resource, err error) string {
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
	synced := make([]cache.InformerSynced, len(pending))
	for i, si := range pending {
		synced[i] = si.informer.HasSynced
	}
	if cache.WaitForCacheSync(ctx.Done(), synced...) {
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
func (f *CacheFactory) objectCounts() map[schema.GroupVersionKind]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	counts := make(map[schema.GroupVersionKind]int, len(f.informers))
	for gvk, si := range f.informers {
		counts[gvk] = len(si.informer.GetStore().ListKeys())
	}
	return counts
}
