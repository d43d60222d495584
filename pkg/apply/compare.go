package apply

import (
	"fmt"
	"reflect"
)

// dropNulls removes null values from content, recursively: the converter
// emits them for unset pointers (creationTimestamp), and a null in an
// apply would clear the field.
func dropNulls(content map[string]any) {
	for k, v := range content {
		switch v := v.(type) {
		case nil:
			delete(content, k)
		case map[string]any:
			dropNulls(v)
		case []any:
			for _, e := range v {
				if m, ok := e.(map[string]any); ok {
					dropNulls(m)
				}
			}
		}
	}
}

// contains reports whether got holds every field of want with an equal
// value (lists: the same length, element by element), and otherwise the
// path of the first difference. Fields got has beyond want (defaults, other
// managers' fields, status) do not matter.
func contains(got, want any, path string) (string, bool) {
	switch w := want.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			return path, false
		}
		for k, wv := range w {
			gv, ok := g[k]
			if !ok {
				return path + "." + k, false
			}
			if p, ok := contains(gv, wv, path+"."+k); !ok {
				return p, false
			}
		}
		return "", true
	case []any:
		g, ok := got.([]any)
		if !ok || len(g) != len(w) {
			return path, false
		}
		for i := range w {
			if p, ok := contains(g[i], w[i], fmt.Sprintf("%s[%d]", path, i)); !ok {
				return p, false
			}
		}
		return "", true
	default:
		if equalScalar(got, want) {
			return "", true
		}
		return path, false
	}
}

func equalScalar(a, b any) bool {
	if fa, ok := number(a); ok {
		fb, ok := number(b)
		return ok && fa == fb
	}
	return reflect.DeepEqual(a, b)
}

func number(v any) (float64, bool) {
	switch n := v.(type) {
	case int64:
		return float64(n), true
	case int:
		return float64(n), true
	case int32:
		return float64(n), true
	case float64:
		return n, true
	}
	return 0, false
}
