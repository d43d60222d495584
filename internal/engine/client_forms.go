package engine

import (
	"context"
	"errors"
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/metadata"
)

// The Metadata and Unstructured forms are served by client-go's metadata
// and dynamic clients, built on the factory's rest.Config and HTTP client:
// they share its connection pool, its write guard and its field manager,
// so their writes are fenced like a typed client's.

// metadataClient is the ResourceClient of a Metadata resource. The
// metadata client asks for protobuf, so the apiserver encodes, and this
// process decodes, only the metadata.
type metadataClient struct {
	res    Resource
	client metadata.Interface
	// apiVersion is res's, made once: every object gets the same string,
	// not one of its own (a cache of 100,000 objects keeps each).
	apiVersion string
}

func (f *ClientFactory) metadataClient(res Resource) (ResourceClient, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.metadata == nil {
		client, err := metadata.NewForConfigAndClient(f.config, f.httpClient)
		if err != nil {
			return nil, fmt.Errorf("framework: metadata client: %w", err)
		}
		f.metadata = client
	}
	return &metadataClient{res: res, client: f.metadata, apiVersion: res.GVK.GroupVersion().String()}, nil
}

func (c *metadataClient) scope(namespace string) metadata.ResourceInterface {
	r := c.client.Resource(c.res.GVR())
	if c.res.Namespaced {
		return r.Namespace(namespace)
	}
	return r
}

// errNoBody is what a metadata-only client answers a create or an update.
var errNoBody = errors.New("a metadata-only client cannot create or update objects (it has no body to send): patch them, or use a Typed or Unstructured client")

// put copies a metadata client's answer into the caller's object, with
// the resource's own apiVersion and kind (the apiserver sends
// meta.k8s.io/v1 PartialObjectMetadata), so that handlers, events and
// owner references see the kind the object is.
func (c *metadataClient) put(got *metav1.PartialObjectMetadata, into runtime.Object) error {
	out, ok := into.(*metav1.PartialObjectMetadata)
	if !ok {
		return fmt.Errorf("framework: %s: decode into %T: a metadata client decodes into *metav1.PartialObjectMetadata", c.res, into)
	}
	*out = *got
	c.setKind(out)
	return nil
}

// setKind gives obj its resource's apiVersion and kind.
func (c *metadataClient) setKind(obj *metav1.PartialObjectMetadata) {
	obj.APIVersion, obj.Kind = c.apiVersion, c.res.GVK.Kind
}

func (c *metadataClient) Get(ctx context.Context, namespace, name string, opts metav1.GetOptions, into runtime.Object) error {
	got, err := c.scope(namespace).Get(ctx, name, opts)
	if err != nil {
		return err
	}
	return c.put(got, into)
}

func (c *metadataClient) List(ctx context.Context, namespace string, opts metav1.ListOptions, into runtime.Object) error {
	got, err := c.scope(namespace).List(ctx, opts)
	if err != nil {
		return err
	}
	out, ok := into.(*metav1.PartialObjectMetadataList)
	if !ok {
		return fmt.Errorf("framework: %s: decode a list into %T: a metadata client decodes into *metav1.PartialObjectMetadataList", c.res, into)
	}
	*out = *got
	out.SetGroupVersionKind(c.res.listGVK())
	for i := range out.Items {
		c.setKind(&out.Items[i])
	}
	return nil
}

func (c *metadataClient) Watch(ctx context.Context, namespace string, opts metav1.ListOptions) (watch.Interface, error) {
	w, err := c.scope(namespace).Watch(ctx, opts)
	if err != nil {
		return nil, err
	}
	return watch.Filter(w, func(e watch.Event) (watch.Event, bool) {
		if m, ok := e.Object.(*metav1.PartialObjectMetadata); ok {
			c.setKind(m)
		}
		return e, true
	}), nil
}

func (c *metadataClient) Create(context.Context, string, runtime.Object, metav1.CreateOptions, runtime.Object) error {
	return fmt.Errorf("framework: %s: %w", c.res, errNoBody)
}

func (c *metadataClient) Update(context.Context, string, string, string, runtime.Object, metav1.UpdateOptions, runtime.Object) error {
	return fmt.Errorf("framework: %s: %w", c.res, errNoBody)
}

func (c *metadataClient) Patch(ctx context.Context, namespace, name string, pt types.PatchType, data []byte, opts metav1.PatchOptions, result runtime.Object, subresources ...string) error {
	got, err := c.scope(namespace).Patch(ctx, name, pt, data, opts, subresources...)
	if err != nil {
		return err
	}
	return c.put(got, result)
}

func (c *metadataClient) Delete(ctx context.Context, namespace, name string, opts metav1.DeleteOptions) error {
	return c.scope(namespace).Delete(ctx, name, opts)
}

func (c *metadataClient) DeleteCollection(ctx context.Context, namespace string, opts metav1.DeleteOptions, listOpts metav1.ListOptions) error {
	return c.scope(namespace).DeleteCollection(ctx, opts, listOpts)
}

// unstructuredClient is the ResourceClient of an Unstructured resource.
type unstructuredClient struct {
	res    Resource
	client dynamic.Interface
}

func (f *ClientFactory) unstructuredClient(res Resource) (ResourceClient, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.dynamic == nil {
		client, err := dynamic.NewForConfigAndClient(f.config, f.httpClient)
		if err != nil {
			return nil, fmt.Errorf("framework: dynamic client: %w", err)
		}
		f.dynamic = client
	}
	return &unstructuredClient{res: res, client: f.dynamic}, nil
}

func (c *unstructuredClient) scope(namespace string) dynamic.ResourceInterface {
	r := c.client.Resource(c.res.GVR())
	if c.res.Namespaced {
		return r.Namespace(namespace)
	}
	return r
}

func (c *unstructuredClient) put(got *unstructured.Unstructured, into runtime.Object) error {
	out, ok := into.(*unstructured.Unstructured)
	if !ok {
		return fmt.Errorf("framework: %s: decode into %T: an unstructured client decodes into *unstructured.Unstructured", c.res, into)
	}
	out.Object = got.Object
	return nil
}

// body turns what a caller hands to Create or Update into an
// Unstructured: a typed object is converted, so that a program may write
// with its own Go types where it has them.
func (c *unstructuredClient) body(obj runtime.Object) (*unstructured.Unstructured, error) {
	if u, ok := obj.(*unstructured.Unstructured); ok {
		return u, nil
	}
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		return nil, fmt.Errorf("framework: %s: convert %T to unstructured: %w", c.res, obj, err)
	}
	u := &unstructured.Unstructured{Object: m}
	u.SetGroupVersionKind(c.res.GVK)
	return u, nil
}

func (c *unstructuredClient) Get(ctx context.Context, namespace, name string, opts metav1.GetOptions, into runtime.Object) error {
	got, err := c.scope(namespace).Get(ctx, name, opts)
	if err != nil {
		return err
	}
	return c.put(got, into)
}

func (c *unstructuredClient) List(ctx context.Context, namespace string, opts metav1.ListOptions, into runtime.Object) error {
	got, err := c.scope(namespace).List(ctx, opts)
	if err != nil {
		return err
	}
	out, ok := into.(*unstructured.UnstructuredList)
	if !ok {
		return fmt.Errorf("framework: %s: decode a list into %T: an unstructured client decodes into *unstructured.UnstructuredList", c.res, into)
	}
	*out = *got
	return nil
}

func (c *unstructuredClient) Watch(ctx context.Context, namespace string, opts metav1.ListOptions) (watch.Interface, error) {
	return c.scope(namespace).Watch(ctx, opts)
}

func (c *unstructuredClient) Create(ctx context.Context, namespace string, obj runtime.Object, opts metav1.CreateOptions, result runtime.Object) error {
	u, err := c.body(obj)
	if err != nil {
		return err
	}
	if c.res.Namespaced && u.GetNamespace() == "" {
		u = u.DeepCopy()
		u.SetNamespace(namespace)
	}
	got, err := c.scope(namespace).Create(ctx, u, opts)
	if err != nil {
		return err
	}
	return c.put(got, result)
}

func (c *unstructuredClient) Update(ctx context.Context, namespace, name, subresource string, obj runtime.Object, opts metav1.UpdateOptions, result runtime.Object) error {
	u, err := c.body(obj)
	if err != nil {
		return err
	}
	if u.GetName() == "" || (c.res.Namespaced && u.GetNamespace() == "") {
		// The typed client writes to the name it is given: so does this.
		u = u.DeepCopy()
		u.SetName(name)
		if c.res.Namespaced {
			u.SetNamespace(namespace)
		}
	}
	var got *unstructured.Unstructured
	if subresource == "" {
		got, err = c.scope(namespace).Update(ctx, u, opts)
	} else {
		got, err = c.scope(namespace).Update(ctx, u, opts, subresource)
	}
	if err != nil {
		return err
	}
	return c.put(got, result)
}

func (c *unstructuredClient) Patch(ctx context.Context, namespace, name string, pt types.PatchType, data []byte, opts metav1.PatchOptions, result runtime.Object, subresources ...string) error {
	got, err := c.scope(namespace).Patch(ctx, name, pt, data, opts, subresources...)
	if err != nil {
		return err
	}
	return c.put(got, result)
}

func (c *unstructuredClient) Delete(ctx context.Context, namespace, name string, opts metav1.DeleteOptions) error {
	return c.scope(namespace).Delete(ctx, name, opts)
}

func (c *unstructuredClient) DeleteCollection(ctx context.Context, namespace string, opts metav1.DeleteOptions, listOpts metav1.ListOptions) error {
	return c.scope(namespace).DeleteCollection(ctx, opts, listOpts)
}
