package generic

import (
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/rein-k8s/rein/pkg/framework"
)

// MetadataController is the controller of a kind's metadata: handlers,
// cache and client see *metav1.PartialObjectMetadata (names, labels,
// annotations, owner references, finalizers), which the apiserver sends
// without spec or status. Objects carry their kind's apiVersion and kind.
// Write them with Patch; Create and Update have no body to send and fail.
type MetadataController = Controller[*metav1.PartialObjectMetadata, *metav1.PartialObjectMetadataList]

// NonNamespacedMetadataController is the MetadataController of a
// cluster-scoped kind.
type NonNamespacedMetadataController = NonNamespacedController[*metav1.PartialObjectMetadata, *metav1.PartialObjectMetadataList]

// DynamicController is the controller of a kind known only at run time:
// handlers, cache and client see *unstructured.Unstructured.
type DynamicController = Controller[*unstructured.Unstructured, *unstructured.UnstructuredList]

// NonNamespacedDynamicController is the DynamicController of a
// cluster-scoped kind.
type NonNamespacedDynamicController = NonNamespacedController[*unstructured.Unstructured, *unstructured.UnstructuredList]

// NewMetadataController returns the metadata-only controller of res (any
// kind, built-in or CRD; its form is set to framework.Metadata). It has
// its own cache and queue, apart from a typed controller of the same
// kind, with the same handler chain, finalizers, fencing and election.
func NewMetadataController(factory *framework.Factory, res framework.Resource) MetadataController {
	return NewController[*metav1.PartialObjectMetadata, *metav1.PartialObjectMetadataList](factory, res.AsMetadata())
}

// NewNonNamespacedMetadataController returns the metadata-only controller
// of the cluster-scoped kind res.
func NewNonNamespacedMetadataController(factory *framework.Factory, res framework.Resource) NonNamespacedMetadataController {
	return NewNonNamespacedController[*metav1.PartialObjectMetadata, *metav1.PartialObjectMetadataList](factory, res.AsMetadata())
}

// NewDynamicController returns the controller of res served as
// unstructured objects (its form is set to framework.Unstructured): for
// kinds a program was not compiled with. framework.ClientFactory's
// DiscoverResource finds res for a GroupVersionKind.
func NewDynamicController(factory *framework.Factory, res framework.Resource) DynamicController {
	return NewController[*unstructured.Unstructured, *unstructured.UnstructuredList](factory, res.AsUnstructured())
}

// NewNonNamespacedDynamicController returns the unstructured controller
// of the cluster-scoped kind res.
func NewNonNamespacedDynamicController(factory *framework.Factory, res framework.Resource) NonNamespacedDynamicController {
	return NewNonNamespacedController[*unstructured.Unstructured, *unstructured.UnstructuredList](factory, res.AsUnstructured())
}

// checkForm records, as a setup error, a controller whose Go types are
// not those of its resource's form (NewController[*corev1.Secret] of a
// Metadata resource, say), which would otherwise fail at every event.
func checkForm[T, TList any](backend Backend, res framework.Resource) {
	obj, err := framework.NewObject(backend.Scheme(), res)
	if err != nil {
		return // a kind the scheme does not know: the factory names it
	}
	list, err := framework.NewList(backend.Scheme(), res)
	if err != nil {
		return
	}
	_, objOK := any(obj).(T)
	_, listOK := any(list).(TList)
	if !objOK || !listOK {
		var t T
		var tl TList
		backend.SetupError(fmt.Errorf("controller of %s: its objects are %T and %T, not %T and %T (use the form's constructor, e.g. generic.NewMetadataController)", res, obj, list, t, tl))
	}
}
