package engine

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/rest"

	"github.com/rein-k8s/rein/internal/procmetrics"
	"github.com/rein-k8s/rein/pkg/fence"
)

// Resource names a kind the engine serves: its GroupVersionKind, the plural
// resource name the API uses in URLs, whether objects live in namespaces,
// and the Form its objects take in Go. Generated code fills it in;
// DiscoverResource finds it at run time for kinds a program was not
// compiled with.
type Resource struct {
	GVK        schema.GroupVersionKind
	Plural     string
	Namespaced bool
	// Form is Typed (the zero value), Metadata or Unstructured.
	Form Form
}

// GVR is the resource's GroupVersionResource.
func (r Resource) GVR() schema.GroupVersionResource {
	return r.GVK.GroupVersion().WithResource(r.Plural)
}

// String is the resource's name as kubectl writes it ("deployments.apps"),
// with the form in brackets unless it is Typed ("secrets[metadata]"): the
// name of its controller, its queue and its metrics.
func (r Resource) String() string {
	name := r.Plural
	if r.GVK.Group != "" {
		name += "." + r.GVK.Group
	}
	if r.Form != Typed {
		name += "[" + r.Form.String() + "]"
	}
	return name
}

func (r Resource) validate() error {
	if r.GVK.Kind == "" || r.GVK.Version == "" || r.Plural == "" {
		return fmt.Errorf("resource %+v: kind, version and plural are all required", r)
	}
	if r.Form > Unstructured {
		return fmt.Errorf("resource %s: unknown form %v", r, r.Form)
	}
	return nil
}

// ClientFactory builds typed REST clients per GroupVersion from one
// rest.Config and one scheme. All clients share one HTTP connection pool,
// and every request passes fence.Transport: a write goes out under the hold
// its context carries (a handler's term or shard), or else under the
// factory's fallback hold (GuardWrites).
type ClientFactory struct {
	config     *rest.Config
	httpClient *http.Client
	scheme     *runtime.Scheme
	codecs     serializer.CodecFactory
	fallback   atomic.Pointer[fence.Hold]
	manager    atomic.Pointer[string]
	// tracer is the factory's (nil: requests are not traced).
	tracer atomic.Pointer[tracer]

	mu       sync.Mutex
	clients  map[clientKey]*rest.RESTClient
	metadata metadata.Interface // made on first use by a Metadata resource
	dynamic  dynamic.Interface  // made on first use by an Unstructured one
}

// clientKey picks a REST client: one per GroupVersion and wire format.
type clientKey struct {
	gv       schema.GroupVersion
	protobuf bool
}

// NewClientFactory returns a factory for the kinds registered in scheme.
func NewClientFactory(config *rest.Config, scheme *runtime.Scheme) (*ClientFactory, error) {
	if config == nil {
		return nil, errors.New("framework: rest.Config is nil")
	}
	if scheme == nil {
		return nil, errors.New("framework: scheme is nil")
	}
	f := &ClientFactory{
		scheme:  scheme,
		codecs:  serializer.NewCodecFactory(scheme),
		clients: map[clientKey]*rest.RESTClient{},
	}
	cfg := rest.CopyConfig(config)
	if cfg.QPS == 0 && cfg.RateLimiter == nil {
		// client-go would throttle an unset config to 5 requests/s, which
		// starves a controller's workers. Like controller-runtime (since
		// v0.21) rein leaves fairness to the apiserver's priority and
		// fairness instead; set QPS to keep a client-side limit.
		cfg.QPS = -1
	}
	cfg.Wrap(func(rt http.RoundTripper) http.RoundTripper {
		// Counted innermost: what reaches the apiserver, not what the
		// fence refused (rein_fence_refusals_total counts that).
		managed := &managedTransport{next: fence.Transport(procmetrics.Transport(rt)), manager: &f.manager, fallback: &f.fallback}
		// Outermost: a client span covers the fence's decision too.
		return &tracedTransport{next: managed, tracer: &f.tracer}
	})
	httpClient, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return nil, fmt.Errorf("framework: HTTP client: %w", err)
	}
	f.config, f.httpClient = cfg, httpClient
	return f, nil
}

// RESTConfig returns a copy of the factory's rest.Config, write guard
// included: clients built from it (an event recorder's, a clientset for
// other kinds) are fenced like the factory's own.
func (f *ClientFactory) RESTConfig() *rest.Config { return rest.CopyConfig(f.config) }

// WithImpersonation returns a client factory whose clients act as the
// user imp names (the apiserver checks that this factory's user may
// impersonate it). Its writes still pass this factory's write guard and
// field manager: a handler's impersonated writes are fenced like its own.
func (f *ClientFactory) WithImpersonation(imp rest.ImpersonationConfig) (*ClientFactory, error) {
	if imp.UserName == "" && imp.UID == "" && len(imp.Groups) == 0 {
		return nil, errors.New("framework: WithImpersonation: name a user, a UID or groups to act as")
	}
	cfg := f.RESTConfig() // wrapped with this factory's guard
	cfg.Impersonate = imp
	return NewClientFactory(cfg, f.scheme)
}

// Scheme is the scheme the factory decodes with.
func (f *ClientFactory) Scheme() *runtime.Scheme { return f.scheme }

// GuardWrites makes h the hold of every mutating request (POST, PUT,
// PATCH, DELETE) of this factory's clients whose context carries none
// (events, hooks); nil lets such requests pass unfenced (no election). A
// request whose context carries a hold passes under that hold alone. It may
// be called at any time, also after clients were built.
func (f *ClientFactory) GuardWrites(h fence.Hold) {
	if h == nil {
		f.fallback.Store(nil)
		return
	}
	f.fallback.Store(&h)
}

// SetFieldManager makes name the field manager of every create, update
// and patch of this factory's clients that names none ("" turns it off).
// pkg/start sets "rein/<lease>/<identity>" for server-side fencing (see
// pkg/leader, "Server-side fencing"); a server-side apply names its own
// manager and keeps it.
func (f *ClientFactory) SetFieldManager(name string) {
	if name == "" {
		f.manager.Store(nil)
		return
	}
	f.manager.Store(&name)
}

// managedTransport sits in front of fence.Transport: a write whose context
// carries no hold goes out under the factory's fallback hold (unfenced
// when there is none: no election); a write that names no field manager
// gets the factory's; watch streams are buffered (see bufferWatch). Reads
// get no fallback hold: an informer's watch must not be cut to a hold's
// deadline.
type managedTransport struct {
	next     http.RoundTripper
	manager  *atomic.Pointer[string]
	fallback *atomic.Pointer[fence.Hold]
}

func (t *managedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method == http.MethodGet {
		return bufferWatch(t.next.RoundTrip(req))
	}
	if !fence.IsWrite(req.Method) {
		return t.next.RoundTrip(req)
	}
	ctx := req.Context()
	_, held := fence.HoldFrom(ctx)
	m := t.manager.Load()
	named := m == nil || req.Method == http.MethodDelete || req.URL.Query().Has("fieldManager")
	if held && named {
		return t.next.RoundTrip(req)
	}
	if !held {
		if h := t.fallback.Load(); h != nil {
			ctx = fence.WithHold(ctx, *h)
		} else {
			ctx = fence.Unfenced(ctx)
		}
	}
	out := req.Clone(ctx)
	if !named {
		q := out.URL.Query()
		q.Set("fieldManager", *m)
		out.URL.RawQuery = q.Encode()
	}
	return t.next.RoundTrip(out)
}

// WrappedRoundTripper lets client-go reach the transport underneath.
func (t *managedTransport) WrappedRoundTripper() http.RoundTripper { return t.next }

// protobufObject is what apimachinery's protobuf serializer needs of a Go
// type, both ways: code generated by go-to-protobuf, which Kubernetes'
// built-in kinds have and CRD kinds do not.
type protobufObject interface {
	runtime.ProtobufMarshaller
	Reset()
	Unmarshal([]byte) error
}

// speaksProtobuf reports whether the Go types of gvk and of its list have
// protobuf code, so that the apiserver can be asked for protobuf.
func (f *ClientFactory) speaksProtobuf(gvk schema.GroupVersionKind) bool {
	for _, k := range []schema.GroupVersionKind{gvk, gvk.GroupVersion().WithKind(gvk.Kind + "List")} {
		obj, err := f.scheme.New(k)
		if err != nil {
			return false
		}
		if _, ok := obj.(protobufObject); !ok {
			return false
		}
	}
	return true
}

// restClient returns the shared REST client of gv. Unless the rest.Config
// names a content type, kinds with protobuf code (the built-in ones) are
// read and written as protobuf, as kube-controller-manager does: decoding
// JSON is the largest CPU cost of a client-go controller, and the
// apiserver encodes protobuf more cheaply too (docs/design.md, "Wire
// format"). CRD kinds stay JSON: CRDs do not serve protobuf.
func (f *ClientFactory) restClient(gv schema.GroupVersion, protobuf bool) (*rest.RESTClient, error) {
	if f.config.ContentType != "" || f.config.AcceptContentTypes != "" {
		protobuf = false // the caller chose; keep their choice
	}
	key := clientKey{gv, protobuf}
	f.mu.Lock()
	defer f.mu.Unlock()
	if c, ok := f.clients[key]; ok {
		return c, nil
	}
	cfg := rest.CopyConfig(f.config)
	cfg.GroupVersion = &gv
	if protobuf {
		cfg.ContentType = runtime.ContentTypeProtobuf
		cfg.AcceptContentTypes = runtime.ContentTypeProtobuf + "," + runtime.ContentTypeJSON
	}
	cfg.APIPath = "/apis"
	if gv.Group == "" {
		cfg.APIPath = "/api"
	}
	cfg.NegotiatedSerializer = serializer.WithoutConversionCodecFactory{CodecFactory: f.codecs}
	if cfg.UserAgent == "" {
		cfg.UserAgent = rest.DefaultKubernetesUserAgent()
	}
	c, err := rest.RESTClientForConfigAndClient(cfg, f.httpClient)
	if err != nil {
		return nil, fmt.Errorf("framework: REST client for %s: %w", gv, err)
	}
	f.clients[key] = c
	return c, nil
}

// ResourceClient reads and writes the objects of one resource, decoding
// into the object it is given, which must be the resource's Go type (or
// its list type). *Client is the one programs use: REST requests to the
// apiserver through the factory's write guard. A controller made by
// NewManualController takes any ResourceClient: pkg/generic/fake serves
// one from memory, for unit tests of handlers.
type ResourceClient interface {
	Get(ctx context.Context, namespace, name string, opts metav1.GetOptions, into runtime.Object) error
	List(ctx context.Context, namespace string, opts metav1.ListOptions, into runtime.Object) error
	Watch(ctx context.Context, namespace string, opts metav1.ListOptions) (watch.Interface, error)
	Create(ctx context.Context, namespace string, obj runtime.Object, opts metav1.CreateOptions, result runtime.Object) error
	Update(ctx context.Context, namespace, name, subresource string, obj runtime.Object, opts metav1.UpdateOptions, result runtime.Object) error
	Patch(ctx context.Context, namespace, name string, pt types.PatchType, data []byte, opts metav1.PatchOptions, result runtime.Object, subresources ...string) error
	Delete(ctx context.Context, namespace, name string, opts metav1.DeleteOptions) error
	DeleteCollection(ctx context.Context, namespace string, opts metav1.DeleteOptions, listOpts metav1.ListOptions) error
}

var _ ResourceClient = (*Client)(nil)

// Client is an untyped client of one resource: every method decodes into
// the object it is given, which must be the resource's Go type (or its list
// type). Every call takes the caller's context.
type Client struct {
	res  Resource
	rest rest.Interface
}

// ForResource returns a client of res. A Typed resource's kind must be
// in the scheme; the Metadata and Unstructured forms need nothing of it.
func (f *ClientFactory) ForResource(res Resource) (ResourceClient, error) {
	if err := res.validate(); err != nil {
		return nil, fmt.Errorf("framework: %w", err)
	}
	if err := res.checkScheme(f.scheme); err != nil {
		return nil, fmt.Errorf("framework: %w", err)
	}
	switch res.Form {
	case Metadata:
		return f.metadataClient(res)
	case Unstructured:
		return f.unstructuredClient(res)
	}
	rc, err := f.restClient(res.GVK.GroupVersion(), f.speaksProtobuf(res.GVK))
	if err != nil {
		return nil, err
	}
	return &Client{res: res, rest: rc}, nil
}

// Resource is the resource this client serves.
func (c *Client) Resource() Resource { return c.res }

func (c *Client) request(r *rest.Request, namespace string) *rest.Request {
	r = r.Resource(c.res.Plural)
	if c.res.Namespaced {
		r = r.Namespace(namespace)
	}
	return r
}

// Get reads one object into into.
func (c *Client) Get(ctx context.Context, namespace, name string, opts metav1.GetOptions, into runtime.Object) error {
	return c.request(c.rest.Get(), namespace).Name(name).
		VersionedParams(&opts, metav1.ParameterCodec).Do(ctx).Into(into)
}

// List reads objects into into, a list object.
func (c *Client) List(ctx context.Context, namespace string, opts metav1.ListOptions, into runtime.Object) error {
	return c.request(c.rest.Get(), namespace).
		VersionedParams(&opts, metav1.ParameterCodec).Do(ctx).Into(into)
}

// Watch watches objects; events carry the resource's Go type.
func (c *Client) Watch(ctx context.Context, namespace string, opts metav1.ListOptions) (watch.Interface, error) {
	opts.Watch = true
	return c.request(c.rest.Get(), namespace).
		VersionedParams(&opts, metav1.ParameterCodec).Watch(ctx)
}

// Create creates obj in namespace and decodes the answer into result.
func (c *Client) Create(ctx context.Context, namespace string, obj runtime.Object, opts metav1.CreateOptions, result runtime.Object) error {
	return c.request(c.rest.Post(), namespace).
		VersionedParams(&opts, metav1.ParameterCodec).Body(obj).Do(ctx).Into(result)
}

// Update replaces the object (named by obj) and decodes the answer into
// result; subresource may be "" or e.g. "status".
func (c *Client) Update(ctx context.Context, namespace, name, subresource string, obj runtime.Object, opts metav1.UpdateOptions, result runtime.Object) error {
	r := c.request(c.rest.Put(), namespace).Name(name)
	if subresource != "" {
		r = r.SubResource(subresource)
	}
	return r.VersionedParams(&opts, metav1.ParameterCodec).Body(obj).Do(ctx).Into(result)
}

// Patch patches the named object and decodes the answer into result.
func (c *Client) Patch(ctx context.Context, namespace, name string, pt types.PatchType, data []byte, opts metav1.PatchOptions, result runtime.Object, subresources ...string) error {
	return c.request(c.rest.Patch(pt), namespace).Name(name).SubResource(subresources...).
		VersionedParams(&opts, metav1.ParameterCodec).Body(data).Do(ctx).Into(result)
}

// Delete deletes the named object.
func (c *Client) Delete(ctx context.Context, namespace, name string, opts metav1.DeleteOptions) error {
	return c.request(c.rest.Delete(), namespace).Name(name).Body(&opts).Do(ctx).Error()
}

// DeleteCollection deletes the objects that listOpts selects.
func (c *Client) DeleteCollection(ctx context.Context, namespace string, opts metav1.DeleteOptions, listOpts metav1.ListOptions) error {
	return c.request(c.rest.Delete(), namespace).
		VersionedParams(&listOpts, metav1.ParameterCodec).Body(&opts).Do(ctx).Error()
}

// DiscoverResource asks the apiserver how it serves gvk (its plural and
// whether it is namespaced) and returns it as a Resource of the given
// form: how a program builds a controller for a kind it was not compiled
// with (Unstructured), or learns a CRD's resource at run time. It fails,
// naming the kind, when the apiserver does not serve it.
func (f *ClientFactory) DiscoverResource(ctx context.Context, gvk schema.GroupVersionKind, form Form) (Resource, error) {
	dc, err := discovery.NewDiscoveryClientForConfigAndClient(f.config, f.httpClient)
	if err != nil {
		return Resource{}, fmt.Errorf("framework: discovery client: %w", err)
	}
	list, err := dc.ServerResourcesForGroupVersionWithContext(ctx, gvk.GroupVersion().String())
	if err != nil {
		return Resource{}, fmt.Errorf("framework: discover %s: the apiserver does not serve %s: %w", gvk.Kind, gvk.GroupVersion(), err)
	}
	for _, r := range list.APIResources {
		if r.Kind == gvk.Kind && !strings.Contains(r.Name, "/") {
			res := Resource{GVK: gvk, Plural: r.Name, Namespaced: r.Namespaced, Form: form}
			return res, res.validate()
		}
	}
	kinds := make([]string, 0, len(list.APIResources))
	for _, r := range list.APIResources {
		if !strings.Contains(r.Name, "/") {
			kinds = append(kinds, r.Kind)
		}
	}
	return Resource{}, fmt.Errorf("framework: discover %s: %s serves no such kind (it serves %s)", gvk.Kind, gvk.GroupVersion(), strings.Join(kinds, ", "))
}
