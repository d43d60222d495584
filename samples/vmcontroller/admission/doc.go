// Package admission holds the sample's admission webhooks for
// VirtualMachines, registered on every replica's webhook server with the
// helpers rein-gen generated from the markers in api/vm/v1alpha1:
//
//   - Validator.Validate denies a VirtualMachine whose image the
//     hypervisor's catalogue refuses (a rule no schema can state: it asks
//     another system), and one whose image changes after the VM was
//     provisioned (the VM keeps its disk: the change would be silently
//     ignored); it warns, without denying, when the user-data Secret the VM
//     names does not exist yet;
//   - Default sets a VirtualMachine's memory from its vCPUs when it states
//     none (v1alpha1.DefaultMemoryPerCPU each), a default computed from
//     another field, which a CRD's `default` cannot express.
//
// Both run on v1alpha1 objects; a v1beta1 request reaches them converted
// by the conversion webhook. Neither writes anything, so both run on every
// replica, leader or not.
package admission
