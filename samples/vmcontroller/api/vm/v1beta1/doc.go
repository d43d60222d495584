// Package v1beta1 is the vm.rein.dev/v1beta1 API of the sample: the
// VirtualMachine of v1alpha1 in another shape (resources grouped, the
// boot disk and its user data together, a running flag instead of a power
// state). It is served next to v1alpha1 and converted to and from it, the
// hub, by the conversion webhook (conversion.go).
//
// +k8s:deepcopy-gen=package
// +groupName=vm.rein.dev
package v1beta1
