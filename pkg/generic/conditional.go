package generic

import (
	"encoding/json"
	"errors"
	"fmt"

	"k8s.io/apimachinery/pkg/types"
)

// conditionalPatch makes a patch apply only to the object's version rv:
// a merge or strategic-merge patch gets metadata.resourceVersion (unless it
// sets one: the caller's condition wins); a JSON patch gets a leading test
// operation. The apiserver answers 409 Conflict when the object moved on.
func conditionalPatch(pt types.PatchType, data []byte, rv string) ([]byte, error) {
	if rv == "" {
		return nil, errors.New("the object has no resourceVersion (it was not read from the apiserver): pass the object a handler got, or use PatchByName")
	}
	switch pt {
	case types.MergePatchType, types.StrategicMergePatchType:
		var patch map[string]any
		if err := json.Unmarshal(data, &patch); err != nil {
			return nil, fmt.Errorf("%s patch is not a JSON object: %w", pt, err)
		}
		if patch == nil {
			patch = map[string]any{}
		}
		metadata, _ := patch["metadata"].(map[string]any)
		if metadata == nil {
			if _, set := patch["metadata"]; set {
				return nil, errors.New("the patch's metadata is not an object")
			}
			metadata = map[string]any{}
			patch["metadata"] = metadata
		}
		if _, set := metadata["resourceVersion"]; set {
			return data, nil
		}
		metadata["resourceVersion"] = rv
		return json.Marshal(patch)
	case types.JSONPatchType:
		var ops []json.RawMessage
		if err := json.Unmarshal(data, &ops); err != nil {
			return nil, fmt.Errorf("JSON patch is not an array of operations: %w", err)
		}
		test, err := json.Marshal(map[string]string{"op": "test", "path": "/metadata/resourceVersion", "value": rv})
		if err != nil {
			return nil, err
		}
		return json.Marshal(append([]json.RawMessage{test}, ops...))
	default:
		return nil, fmt.Errorf("patch type %q: want JSON, merge, strategic-merge or apply", pt)
	}
}
