package v1beta1

import (
	"math/rand/v2"
	"reflect"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/rein-k8s/rein/samples/vmcontroller/api/vm/v1alpha1"
)

// randomVM is a v1beta1 VirtualMachine with every field drawn at random,
// each optional field sometimes left out.
func randomVM(r *rand.Rand) *VirtualMachine {
	word := func() string {
		b := make([]byte, 1+r.IntN(12))
		for i := range b {
			b[i] = "abcdefghijklmnopqrstuvwxyz0123456789-"[r.IntN(37)]
		}
		return string(b)
	}
	vm := &VirtualMachine{
		ObjectMeta: metav1.ObjectMeta{Name: word(), Namespace: word(), Generation: r.Int64N(100), ResourceVersion: word(),
			Labels: map[string]string{word(): word()}, Annotations: map[string]string{word(): word()}},
		Spec: VirtualMachineSpec{
			Resources: Resources{CPU: 1 + r.Int32N(64)},
			Boot:      Boot{Image: word()},
		},
		Status: VirtualMachineStatus{
			Phase: []string{"", "Pending", "Provisioning", "Running", "Stopped", "Deleting", "Failed"}[r.IntN(7)],
			ID:    word(), ObservedGeneration: r.Int64N(100),
		},
	}
	if r.IntN(2) == 0 {
		q := resource.MustParse([]string{"512Mi", "1Gi", "3Gi", "1536Mi", "2G"}[r.IntN(5)])
		vm.Spec.Resources.Memory = &q
	}
	if r.IntN(2) == 0 {
		vm.Spec.Boot.UserDataSecret = word()
	}
	if n := r.IntN(3); n > 0 {
		running := n == 1
		vm.Spec.Running = &running
	}
	for i := range r.IntN(3) {
		vm.Status.Conditions = append(vm.Status.Conditions, metav1.Condition{
			Type: []string{"Provisioned", "Ready", "Configured"}[i], Status: metav1.ConditionTrue, Reason: word(), Message: word(),
			LastTransitionTime: metav1.NewTime(time.Unix(r.Int64N(1<<31), 0)),
		})
	}
	return vm
}

// TestRoundTripThroughTheHub: for generated v1beta1 objects, v1beta1 →
// v1alpha1 → v1beta1 gives the object back, and so does v1alpha1 →
// v1beta1 → v1alpha1 for the hub objects that conversion produces.
func TestRoundTripThroughTheHub(t *testing.T) {
	r := rand.New(rand.NewPCG(1, uint64(time.Now().UnixNano())))
	for i := range 2000 {
		in := randomVM(r)
		var hub v1alpha1.VirtualMachine
		if err := in.ConvertTo(&hub); err != nil {
			t.Fatal(err)
		}
		var back VirtualMachine
		if err := back.ConvertFrom(&hub); err != nil {
			t.Fatal(err)
		}
		if !equal(in, &back) {
			t.Fatalf("object %d: v1beta1 → v1alpha1 → v1beta1 changed it:\n in: %+v\nout: %+v", i, in, &back)
		}
		var hubAgain v1alpha1.VirtualMachine
		if err := back.ConvertTo(&hubAgain); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(hub, hubAgain) {
			t.Fatalf("object %d: v1alpha1 → v1beta1 → v1alpha1 changed it:\n in: %+v\nout: %+v", i, hub, hubAgain)
		}
	}
}

// equal compares VMs with quantities by value (1Gi parsed and 1Gi
// canonicalised are the same memory).
func equal(a, b *VirtualMachine) bool {
	am, bm := a.Spec.Resources.Memory, b.Spec.Resources.Memory
	if (am == nil) != (bm == nil) || (am != nil && am.Cmp(*bm) != 0) {
		return false
	}
	a, b = a.DeepCopy(), b.DeepCopy()
	a.Spec.Resources.Memory, b.Spec.Resources.Memory = nil, nil
	return reflect.DeepEqual(a, b)
}

// TestConvertRefusesWhatHasNoForm: a power state v1beta1 cannot say is an
// error, not a silent default.
func TestConvertRefusesWhatHasNoForm(t *testing.T) {
	var vm VirtualMachine
	hub := &v1alpha1.VirtualMachine{Spec: v1alpha1.VirtualMachineSpec{PowerState: "Sideways"}}
	if err := vm.ConvertFrom(hub); err == nil {
		t.Error("ConvertFrom accepted powerState Sideways")
	}
}
