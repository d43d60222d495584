// Package generic is what handler code imports: typed controllers and
// everything a handler deals with, each exported once.
//
//   - Controller[T, TList]: OnChange/OnRemove handler chains, Enqueue,
//     EnqueueAfter and EnqueueLow, a typed Cache with namespace-scoped indexes, and a
//     typed Client whose every call takes the caller's context and whose
//     writes are conditional. One type serves every kind: a cluster-scoped
//     kind takes "" wherever a namespace goes.
//   - Handler results: nil, ErrSkip, RequeueAfter, or an error (retried
//     with backoff); HandlerError describes a failure.
//   - Logger(ctx): the handler's logger, with controller, handler, key and
//     token; the same as a logr.Logger (logr.FromContext) and an
//     *slog.Logger (Slog).
//   - Resource names a kind; IgnoreStatus filters a handler's events;
//     FinalizerName is the finalizer an OnRemove handler manages.
//   - Status and generating handlers (RegisterStatusHandler,
//     RegisterGeneratingHandler) and UpdateOnChange write only what
//     changed.
//
// Generated controllers are aliases of these types; hand-written code can
// use them directly:
//
//	cms := generic.NewController[*corev1.ConfigMap, *corev1.ConfigMapList](factory, Resource{
//		GVK: corev1.SchemeGroupVersion.WithKind("ConfigMap"), Plural: "configmaps", Namespaced: true,
//	})
//	cms.OnChange(ctx, "annotate", func(ctx context.Context, key string, cm *corev1.ConfigMap) (*corev1.ConfigMap, error) {
//		if cm == nil { return nil, nil } // deleted
//		...
//	})
//
// The Go types chosen pick the form a kind is served in: the scheme's
// types; *metav1.PartialObjectMetadata (names, labels, annotations, owner
// references and finalizers of any kind, without spec or status: at a
// fraction of the memory); or *unstructured.Unstructured (a kind known
// only at run time). Objects come from the factory's scheme or the form,
// not from reflection. A handler gets its own copy of the cached object;
// objects the Cache returns are shared and must not be modified.
//
// Cache indexes of a namespaced kind are scoped by namespace: an index
// value is stored with the namespace of the object it came from, and
// Cache.GetByIndex(namespace, index, value) finds objects of that namespace
// only, so an index of children by their owner's name never returns the
// children of a same-named owner elsewhere. GetByIndexAllNamespaces is the
// lookup that spans namespaces, by name.
//
// Controllers run on a framework.Factory; package fake makes one whose
// kinds live in memory, on which a test registers handlers with the code
// its main uses and runs a controller's chain on one key in milliseconds.
//
// Registration never panics and returns nothing: a mistake (a kind missing
// from the scheme, a handler name that makes no valid finalizer) is kept by
// the factory and returned when the replica starts, with the reason.
//
// Limits: the Cache lags the apiserver (a handler may see an object older
// than its own last write; conditional writes turn that into a retried
// conflict, not a lost update); the Client always asks the apiserver.
// Handlers of one kind share one queue: a key is never run by two workers
// at once, but keys of one kind run in parallel (Options.Workers).
package generic
