package generic

import (
	"fmt"

	"github.com/rein-k8s/rein/internal/engine"
)

// checkForm records, as a setup error, a controller whose Go types are
// not those the scheme makes for its resource (NewController[*corev1.Secret,
// *corev1.ConfigMapList], say), which would otherwise fail at every event.
func checkForm[T, TList any](ops *engine.Ops, res Resource) {
	obj, err := engine.NewObject(ops.Scheme(), res)
	if err != nil {
		return // a kind the scheme does not know: the factory names it
	}
	list, err := engine.NewList(ops.Scheme(), res)
	if err != nil {
		return
	}
	_, objOK := any(obj).(T)
	_, listOK := any(list).(TList)
	if !objOK || !listOK {
		var t T
		var tl TList
		ops.SetupError(fmt.Errorf("controller of %s: its objects are %T and %T, not %T and %T", res, obj, list, t, tl))
	}
}
