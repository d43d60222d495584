package v1alpha1

import (
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// PowerState is whether a VM should run.
type PowerState string

// The power states.
const (
	PowerOn  PowerState = "On"
	PowerOff PowerState = "Off"
)

// Phase is where a VirtualMachine is in its life.
type Phase string

// The phases.
const (
	PhasePending      Phase = "Pending"
	PhaseProvisioning Phase = "Provisioning"
	PhaseRunning      Phase = "Running"
	PhaseStopped      Phase = "Stopped"
	PhaseDeleting     Phase = "Deleting"
	PhaseFailed       Phase = "Failed"
)

// Condition types of a VirtualMachine.
const (
	ConditionProvisioned = "Provisioned"
	ConditionReady       = "Ready"
	// ConditionConfigured says whether the VM's child objects (its
	// console ConfigMap and cloud-init Secret) are as declared.
	ConditionConfigured = "Configured"
)

// UserDataKey is the key of a user-data Secret (spec.userDataSecret)
// that holds the cloud-init user data.
const UserDataKey = "userdata"

// VirtualMachine is a virtual machine on a hypervisor.
//
// +genclient
// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=vm
// +kubebuilder:printcolumn:name=Phase,type=string,JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name=CPU,type=integer,JSONPath=`.spec.cpu`
// +kubebuilder:printcolumn:name=Memory,type=string,JSONPath=`.spec.memory`
// +kubebuilder:printcolumn:name=Age,type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:storageversion
type VirtualMachine struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   VirtualMachineSpec   `json:"spec"`
	Status VirtualMachineStatus `json:"status,omitempty"`
}

// VirtualMachineSpec is the VM wanted.
type VirtualMachineSpec struct {
	// CPU is the number of virtual CPUs.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=64
	CPU int32 `json:"cpu"`
	// Memory is the VM's memory, e.g. 2Gi. When left out, the defaulting
	// webhook gives the VM 1Gi per vCPU.
	// +optional
	Memory resource.Quantity `json:"memory,omitempty"`
	// Image is the disk image the VM boots.
	// +kubebuilder:validation:MinLength=1
	Image string `json:"image"`
	// PowerState is whether the VM should run.
	// +kubebuilder:validation:Enum=On;Off
	// +kubebuilder:default=On
	// +optional
	PowerState PowerState `json:"powerState,omitempty"`
	// UserDataSecret names a Secret in the VM's namespace whose key
	// "userdata" is the cloud-init user data the VM boots with. The
	// controller renders it, with the VM's metadata, into the VM's
	// cloud-init Secret (<name>-cloud-init), and follows its changes.
	// +optional
	UserDataSecret string `json:"userDataSecret,omitempty"`
}

// VirtualMachineStatus is the VM observed.
type VirtualMachineStatus struct {
	// Phase is where the VM is in its life.
	// +kubebuilder:validation:Enum=Pending;Provisioning;Running;Stopped;Deleting;Failed
	// +optional
	Phase Phase `json:"phase,omitempty"`
	// VMID is the hypervisor's ID of the VM.
	// +optional
	VMID string `json:"vmID,omitempty"`
	// ObservedGeneration is the generation this status was computed for.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// Conditions are Provisioned, Ready and Configured, with reasons and
	// messages.
	// +listType=map
	// +listMapKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}
