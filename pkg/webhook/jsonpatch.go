package webhook

import (
	"encoding/json"
	"maps"
	"reflect"
	"slices"
	"strings"
)

// patchOp is one operation of an RFC 6902 JSON patch.
type patchOp struct {
	Op    string `json:"op"`
	Path  string `json:"path"`
	Value any    `json:"value,omitempty"`
}

// MarshalJSON writes value for add and replace even when it is null
// (omitempty would drop a JSON null the defaulter set on purpose).
func (o patchOp) MarshalJSON() ([]byte, error) {
	if o.Op == "remove" {
		return json.Marshal(struct {
			Op   string `json:"op"`
			Path string `json:"path"`
		}{o.Op, o.Path})
	}
	return json.Marshal(struct {
		Op    string `json:"op"`
		Path  string `json:"path"`
		Value any    `json:"value"`
	}{o.Op, o.Path, o.Value})
}

// jsonPatch returns the operations that turn the JSON document before into
// after. Objects are compared member by member; arrays and scalars that
// differ are replaced whole (a defaulter rarely changes one element of a
// list, and replacing the list keeps the patch right whatever the other
// elements are). Members are visited in sorted order, so equal inputs give
// equal patches.
func jsonPatch(before, after []byte) ([]patchOp, error) {
	var a, b any
	if err := json.Unmarshal(before, &a); err != nil {
		return nil, err
	}
	if err := json.Unmarshal(after, &b); err != nil {
		return nil, err
	}
	var ops []patchOp
	diffJSON(&ops, "", a, b)
	return ops, nil
}

func diffJSON(ops *[]patchOp, path string, a, b any) {
	am, aIsObject := a.(map[string]any)
	bm, bIsObject := b.(map[string]any)
	if !aIsObject || !bIsObject {
		if !reflect.DeepEqual(a, b) {
			*ops = append(*ops, patchOp{Op: "replace", Path: path, Value: b})
		}
		return
	}
	for _, k := range slices.Sorted(maps.Keys(am)) {
		if _, ok := bm[k]; !ok {
			*ops = append(*ops, patchOp{Op: "remove", Path: path + "/" + escapePointer(k)})
		}
	}
	for _, k := range slices.Sorted(maps.Keys(bm)) {
		p := path + "/" + escapePointer(k)
		av, ok := am[k]
		if !ok {
			*ops = append(*ops, patchOp{Op: "add", Path: p, Value: bm[k]})
			continue
		}
		diffJSON(ops, p, av, bm[k])
	}
}

// escapePointer escapes one reference token of a JSON pointer (RFC 6901).
func escapePointer(s string) string {
	return strings.NewReplacer("~", "~0", "/", "~1").Replace(s)
}
