// Package v1alpha1 is the vm.rein.dev/v1alpha1 API of the sample: a
// VirtualMachine is turned into a VM on a hypervisor.
//
// +k8s:deepcopy-gen=package
// +groupName=vm.rein.dev
package v1alpha1
