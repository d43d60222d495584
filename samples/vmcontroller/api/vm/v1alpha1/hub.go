package v1alpha1

import "k8s.io/apimachinery/pkg/api/resource"

// Hub makes v1alpha1 the version every other version of VirtualMachine
// converts to and from (it is also the storage version, and the one the
// controller works in).
func (*VirtualMachine) Hub() {}

// DefaultMemoryPerCPU is the memory the defaulting webhook gives a
// VirtualMachine that states none, per vCPU: a default computed from
// another field, which a CRD's `default` cannot express.
var DefaultMemoryPerCPU = resource.MustParse("1Gi")

// MemoryOrDefault is the memory the VM asks for, or, when it states none,
// DefaultMemoryPerCPU per vCPU: what the defaulting webhook writes, and
// what the controller uses for a VM stored without it (the webhook not
// installed).
func (s *VirtualMachineSpec) MemoryOrDefault() resource.Quantity {
	if !s.Memory.IsZero() {
		return s.Memory
	}
	return *resource.NewQuantity(DefaultMemoryPerCPU.Value()*int64(s.CPU), resource.BinarySI)
}
