package v1beta1

import (
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// VirtualMachine is a virtual machine on a hypervisor.
//
// +genclient
// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=vm
// +kubebuilder:printcolumn:name=Phase,type=string,JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name=Running,type=boolean,JSONPath=`.spec.running`
// +kubebuilder:printcolumn:name=Age,type=date,JSONPath=`.metadata.creationTimestamp`
type VirtualMachine struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   VirtualMachineSpec   `json:"spec"`
	Status VirtualMachineStatus `json:"status,omitempty"`
}

// VirtualMachineSpec is the VM wanted.
type VirtualMachineSpec struct {
	// Resources are the VM's vCPUs and memory.
	Resources Resources `json:"resources"`
	// Boot is what the VM boots.
	Boot Boot `json:"boot"`
	// Running says whether the VM should run; unset means it should (as
	// v1alpha1's powerState On).
	// +optional
	Running *bool `json:"running,omitempty"`
}

// Resources are a VM's vCPUs and memory.
type Resources struct {
	// CPU is the number of virtual CPUs.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=64
	CPU int32 `json:"cpu"`
	// Memory is the VM's memory, e.g. 2Gi; 1Gi per vCPU when left out.
	// +optional
	Memory *resource.Quantity `json:"memory,omitempty"`
}

// Boot is a VM's boot disk and its first-boot configuration.
type Boot struct {
	// Image is the disk image the VM boots.
	// +kubebuilder:validation:MinLength=1
	Image string `json:"image"`
	// UserDataSecret names a Secret in the VM's namespace whose key
	// "userdata" is the cloud-init user data.
	// +optional
	UserDataSecret string `json:"userDataSecret,omitempty"`
}

// VirtualMachineStatus is the VM observed.
type VirtualMachineStatus struct {
	// Phase is where the VM is in its life.
	// +kubebuilder:validation:Enum=Pending;Provisioning;Running;Stopped;Deleting;Failed
	// +optional
	Phase string `json:"phase,omitempty"`
	// ID is the hypervisor's ID of the VM.
	// +optional
	ID string `json:"id,omitempty"`
	// ObservedGeneration is the generation this status was computed for.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// Conditions are Provisioned, Ready and Configured.
	// +listType=map
	// +listMapKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}
