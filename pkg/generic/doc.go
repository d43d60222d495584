// Package generic is the typed face of rein's engine, with Go generics:
// Controller[T, TList] (and NonNamespacedController for cluster-scoped
// kinds) offers typed OnChange/OnRemove handler chains, Enqueue helpers, a
// typed Cache with indexers, and a typed client whose every call takes the
// caller's context.
//
// Generated controllers are thin aliases of these interfaces; hand-written
// code can use them directly:
//
//	cms := generic.NewController[*corev1.ConfigMap, *corev1.ConfigMapList](factory, framework.Resource{
//		GVK: corev1.SchemeGroupVersion.WithKind("ConfigMap"), Plural: "configmaps", Namespaced: true,
//	})
//	cms.OnChange(ctx, "annotate", func(ctx context.Context, key string, cm *corev1.ConfigMap) (*corev1.ConfigMap, error) {
//		if cm == nil { return nil, nil } // deleted
//		...
//	})
//
// NewMetadataController and NewDynamicController are the same controllers
// over *metav1.PartialObjectMetadata (names, labels, annotations, owner
// references and finalizers of any kind, without spec or status: for
// handlers that need no more, at a fraction of the memory) and over
// *unstructured.Unstructured (a kind known only at run time).
//
// Objects come from the scheme of the factory (scheme.New), or from the
// resource's form (framework.NewObject), not from reflection. A handler gets its own copy of the cached object; objects the
// Cache returns are shared and must not be modified.
//
// Cache indexes of a namespaced kind are scoped by namespace: an index
// value is stored with the namespace of the object it came from, and
// Cache.GetByIndex(namespace, index, value) finds objects of that namespace
// only, so an index of children by their owner's name never returns the
// children of a same-named owner elsewhere. GetByIndexAllNamespaces is the
// lookup that spans namespaces, by name.
//
// Typed controllers run on a Backend: NewController's is a
// framework.Factory. Package fake has an in-memory one, on which a test
// registers handlers with the code its main uses and runs a controller's
// chain on one key in milliseconds, without an apiserver.
//
// Registration never panics and returns nothing: a mistake (a kind missing
// from the scheme, a handler name that makes no valid finalizer) is kept by
// the factory and returned by its StartCaches, so the replica fails to start
// with the reason.
package generic
