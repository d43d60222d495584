package engine

import (
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// Form is the Go shape a Resource's objects take in clients, caches and
// handlers. One kind may be served in several forms by one factory: each
// form has its own cache and its own controller (a metadata-only cache of
// Secrets beside a typed one is two watches, not one).
type Form uint8

const (
	// Typed objects are the Go types the factory's scheme registers for
	// the kind and its list (the default).
	Typed Form = iota
	// Metadata objects are *metav1.PartialObjectMetadata, lists
	// *metav1.PartialObjectMetadataList: names, labels, annotations,
	// owner references, finalizers, no spec or status. The apiserver
	// strips the rest before it sends, so a metadata-only cache of a kind
	// costs a fraction of a typed one. Objects carry the kind's own
	// apiVersion and kind. They cannot be created or updated (there is no
	// body to send): patch them.
	Metadata
	// Unstructured objects are *unstructured.Unstructured, lists
	// *unstructured.UnstructuredList: any kind, known only at run time,
	// with no Go type and no scheme entry.
	Unstructured
)

func (f Form) String() string {
	switch f {
	case Typed:
		return "typed"
	case Metadata:
		return "metadata"
	case Unstructured:
		return "unstructured"
	}
	return fmt.Sprintf("Form(%d)", uint8(f))
}

// FormOf returns the form whose objects are obj's Go type: Metadata for
// *metav1.PartialObjectMetadata, Unstructured for
// *unstructured.Unstructured, Typed for every other type.
func FormOf(obj any) Form {
	switch obj.(type) {
	case *metav1.PartialObjectMetadata:
		return Metadata
	case *unstructured.Unstructured:
		return Unstructured
	}
	return Typed
}

// listGVK is the kind of r's list.
func (r Resource) listGVK() schema.GroupVersionKind {
	return r.GVK.GroupVersion().WithKind(r.GVK.Kind + "List")
}

// checkScheme reports a typed resource whose kind or list kind the scheme
// does not know; the other forms need nothing of the scheme.
func (r Resource) checkScheme(scheme *runtime.Scheme) error {
	if r.Form != Typed {
		return nil
	}
	if !scheme.Recognizes(r.GVK) {
		return fmt.Errorf("kind %s in %s is not registered in the scheme: add its API package's AddToScheme to the scheme given to NewFactory, or serve it as *unstructured.Unstructured or *metav1.PartialObjectMetadata (the types given to generic.NewController)",
			r.GVK.Kind, r.GVK.GroupVersion().String())
	}
	if !scheme.Recognizes(r.listGVK()) {
		return fmt.Errorf("list kind %s is not registered in the scheme", r.listGVK())
	}
	return nil
}

// NewObject returns an empty object of res in its form: what clients
// decode into and what handlers receive.
func NewObject(scheme *runtime.Scheme, res Resource) (runtime.Object, error) {
	switch res.Form {
	case Typed:
		return scheme.New(res.GVK)
	case Metadata:
		obj := &metav1.PartialObjectMetadata{}
		obj.SetGroupVersionKind(res.GVK)
		return obj, nil
	case Unstructured:
		obj := &unstructured.Unstructured{}
		obj.SetGroupVersionKind(res.GVK)
		return obj, nil
	}
	return nil, fmt.Errorf("resource %s: unknown form %v", res, res.Form)
}

// NewList returns an empty list of res in its form.
func NewList(scheme *runtime.Scheme, res Resource) (runtime.Object, error) {
	switch res.Form {
	case Typed:
		return scheme.New(res.listGVK())
	case Metadata:
		list := &metav1.PartialObjectMetadataList{}
		list.SetGroupVersionKind(res.listGVK())
		return list, nil
	case Unstructured:
		list := &unstructured.UnstructuredList{}
		list.SetGroupVersionKind(res.listGVK())
		return list, nil
	}
	return nil, fmt.Errorf("resource %s: unknown form %v", res, res.Form)
}
