package engine

import (
	"encoding/json"
	"hash/fnv"
	"sync"

	"k8s.io/apimachinery/pkg/runtime"
)

// changeFilter remembers, per key, the fingerprint of the object an
// IgnoreStatus handler last succeeded on.
type changeFilter struct {
	mu   sync.Mutex
	last map[string]uint64
}

// fingerprint is a hash of an object without its status, resourceVersion
// and managedFields; ok is false when it could not be computed (the
// handler then runs).
type fingerprint struct {
	sum      uint64
	ok, done bool
}

func fingerprintOf(obj runtime.Object) fingerprint {
	content, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		return fingerprint{done: true}
	}
	delete(content, "status")
	if m, ok := content["metadata"].(map[string]any); ok {
		delete(m, "resourceVersion")
		delete(m, "managedFields")
	}
	data, err := json.Marshal(content)
	if err != nil {
		return fingerprint{done: true}
	}
	h := fnv.New64a()
	_, _ = h.Write(data)
	return fingerprint{sum: h.Sum64(), ok: true, done: true}
}

func (f *changeFilter) unchanged(key string, sum uint64) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	last, ok := f.last[key]
	return ok && last == sum
}

// record notes a success on key; a nil filter records nothing.
func (f *changeFilter) record(key string, fp fingerprint) {
	if f == nil || !fp.ok {
		return
	}
	f.mu.Lock()
	f.last[key] = fp.sum
	f.mu.Unlock()
}

func (f *changeFilter) forget(key string) {
	f.mu.Lock()
	delete(f.last, key)
	f.mu.Unlock()
}
