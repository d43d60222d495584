package v1alpha1

// The sample's admission webhooks, in kubebuilder's marker language:
// rein-gen generates RegisterVirtualMachineValidator and
// RegisterVirtualMachineDefaulter (controllers/vm/v1alpha1) from them,
// and deploy/webhook/webhooks.yaml. Requests for v1beta1 objects reach
// them converted to v1alpha1 (matchPolicy Equivalent).

// +kubebuilder:webhook:path=/validate-vm-rein-dev-v1alpha1-virtualmachine,mutating=false,failurePolicy=fail,sideEffects=None,groups=vm.rein.dev,resources=virtualmachines,verbs=create;update,versions=v1alpha1,name=vvirtualmachine.vm.rein.dev,admissionReviewVersions=v1,timeoutSeconds=5
// +kubebuilder:webhook:path=/mutate-vm-rein-dev-v1alpha1-virtualmachine,mutating=true,failurePolicy=fail,sideEffects=None,groups=vm.rein.dev,resources=virtualmachines,verbs=create;update,versions=v1alpha1,name=mvirtualmachine.vm.rein.dev,admissionReviewVersions=v1,timeoutSeconds=5
// +kubebuilder:webhookconfiguration:mutating=false,name=vmcontroller
// +kubebuilder:webhookconfiguration:mutating=true,name=vmcontroller
