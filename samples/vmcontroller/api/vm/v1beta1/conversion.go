package v1beta1

import (
	"fmt"

	"github.com/rein-k8s/rein/pkg/conversion"
	"github.com/rein-k8s/rein/samples/vmcontroller/api/vm/v1alpha1"
)

// ConvertTo converts vm to the hub, v1alpha1. Every field has a place
// there, so nothing is lost either way.
func (vm *VirtualMachine) ConvertTo(hub conversion.Hub) error {
	dst, ok := hub.(*v1alpha1.VirtualMachine)
	if !ok {
		return fmt.Errorf("v1beta1.VirtualMachine converts to *v1alpha1.VirtualMachine, not %T", hub)
	}
	dst.ObjectMeta = *vm.ObjectMeta.DeepCopy()
	dst.Spec = v1alpha1.VirtualMachineSpec{
		CPU:            vm.Spec.Resources.CPU,
		Image:          vm.Spec.Boot.Image,
		UserDataSecret: vm.Spec.Boot.UserDataSecret,
	}
	if vm.Spec.Resources.Memory != nil {
		dst.Spec.Memory = vm.Spec.Resources.Memory.DeepCopy()
	}
	if vm.Spec.Running != nil {
		dst.Spec.PowerState = v1alpha1.PowerOff
		if *vm.Spec.Running {
			dst.Spec.PowerState = v1alpha1.PowerOn
		}
	}
	dst.Status = v1alpha1.VirtualMachineStatus{
		Phase:              v1alpha1.Phase(vm.Status.Phase),
		VMID:               vm.Status.ID,
		ObservedGeneration: vm.Status.ObservedGeneration,
		Conditions:         copyConditions(vm.Status.Conditions),
	}
	return nil
}

// ConvertFrom fills vm from the hub, v1alpha1. A zero memory is v1alpha1's
// "left out" (its memory is not a pointer), so it becomes nil; the
// defaulting webhook replaces it before an object is stored.
func (vm *VirtualMachine) ConvertFrom(hub conversion.Hub) error {
	src, ok := hub.(*v1alpha1.VirtualMachine)
	if !ok {
		return fmt.Errorf("v1beta1.VirtualMachine converts from *v1alpha1.VirtualMachine, not %T", hub)
	}
	vm.ObjectMeta = *src.ObjectMeta.DeepCopy()
	vm.Spec = VirtualMachineSpec{
		Resources: Resources{CPU: src.Spec.CPU},
		Boot:      Boot{Image: src.Spec.Image, UserDataSecret: src.Spec.UserDataSecret},
	}
	if !src.Spec.Memory.IsZero() {
		vm.Spec.Resources.Memory = ptrTo(src.Spec.Memory.DeepCopy())
	}
	switch src.Spec.PowerState {
	case v1alpha1.PowerOn:
		vm.Spec.Running = ptrTo(true)
	case v1alpha1.PowerOff:
		vm.Spec.Running = ptrTo(false)
	case "":
	default:
		return fmt.Errorf("v1alpha1 powerState %q has no v1beta1 form (running is true for On, false for Off)", src.Spec.PowerState)
	}
	vm.Status = VirtualMachineStatus{
		Phase:              string(src.Status.Phase),
		ID:                 src.Status.VMID,
		ObservedGeneration: src.Status.ObservedGeneration,
		Conditions:         copyConditions(src.Status.Conditions),
	}
	return nil
}

func copyConditions[T any](in []T) []T {
	if in == nil {
		return nil
	}
	return append([]T(nil), in...)
}

func ptrTo[T any](v T) *T { return &v }
