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
