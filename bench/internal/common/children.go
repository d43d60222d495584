package common

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// ChildrenSet is the name both programs give their generating handler and
// its set of children (rein's field manager and finalizer derive from it,
// wrangler's objectset id is it).
const ChildrenSet = "bench-children"

// NameLabel is the label every child carries, with its parent's name.
const NameLabel = "app.kubernetes.io/name"

// Image is the image of the driver's Deployment number i: parents differ in
// their spec, and so do their children.
func Image(i int) string { return fmt.Sprintf("registry.example/app:v%d", i%7) }

// ChildData is what the children of the parent called name, with image and
// replicas, hold: the ConfigMap's data, the Secret's data, and the
// ServiceAccount's labels (every child carries them).
func ChildData(name, image string, replicas int32) (configMap map[string]string, secret map[string][]byte, labels map[string]string) {
	sum := sha256.Sum256([]byte(name + "/" + image))
	configMap = map[string]string{"app": name, "image": image, "replicas": strconv.Itoa(int(replicas))}
	secret = map[string][]byte{"token": []byte(hex.EncodeToString(sum[:16]))}
	labels = map[string]string{NameLabel: name, "app.kubernetes.io/managed-by": "bench"}
	return configMap, secret, labels
}

// Children are the objects the generating handler of either program
// declares for d: a ConfigMap, a Secret and a ServiceAccount named after
// it, in its namespace. (The namespace is set, as wrangler users do:
// wrangler's apply puts a child without one in "default" unless owner
// references are on, which its GeneratingHandlerOptions turn on with
// NoOwnerReference: true. rein defaults it to the owner's.)
func Children(d *appsv1.Deployment) []runtime.Object {
	image := ""
	if cs := d.Spec.Template.Spec.Containers; len(cs) > 0 {
		image = cs[0].Image
	}
	replicas := int32(1)
	if d.Spec.Replicas != nil {
		replicas = *d.Spec.Replicas
	}
	cmData, secretData, labels := ChildData(d.Name, image, replicas)
	meta := func() metav1.ObjectMeta {
		l := make(map[string]string, len(labels))
		for k, v := range labels {
			l[k] = v
		}
		return metav1.ObjectMeta{Name: d.Name, Namespace: d.Namespace, Labels: l}
	}
	no := false
	return []runtime.Object{
		&corev1.ConfigMap{ObjectMeta: meta(), Data: cmData},
		&corev1.Secret{ObjectMeta: meta(), Data: secretData},
		&corev1.ServiceAccount{ObjectMeta: meta(), AutomountServiceAccountToken: &no},
	}
}

// Pass logs "handled-all <time>" once every one of want parents has been
// through the handler chain (the last handler calls Handled): the end of
// the first full pass.
type Pass struct {
	want int
	mu   sync.Mutex
	seen map[string]struct{}
	done bool
	// progress, for the pass workload, also logs "progress <percent>
	// <time>" as each percent of the keys has been handled: the driver
	// spreads its changes over the pass by it (99 lines a pass).
	progress bool
}

// NewPass returns a Pass that waits for want distinct keys.
func NewPass(want int) *Pass { return &Pass{want: want, seen: make(map[string]struct{}, want)} }

// MarksPass is the marks and pass workloads' Pass: nil (no "handled-all"
// line) unless --objects is set; with progress lines for the pass workload.
func (f *Flags) MarksPass() *Pass {
	if f.Objects <= 0 {
		return nil
	}
	p := NewPass(f.Objects)
	p.progress = f.Workload == WorkloadPass
	return p
}

// Handled records that key went through the handlers (a nil Pass records
// nothing).
func (p *Pass) Handled(key string) {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.done {
		return
	}
	before := len(p.seen)
	p.seen[key] = struct{}{}
	if p.progress && len(p.seen) > before && len(p.seen) < p.want && len(p.seen)*100/p.want > before*100/p.want {
		fmt.Printf("progress %d %s\n", len(p.seen)*100/p.want, time.Now().Format(time.RFC3339Nano))
	}
	if len(p.seen) >= p.want {
		p.done = true
		p.seen = nil // the keys are no longer needed: leave the process's memory as it was
		logLine("handled-all")
	}
}
