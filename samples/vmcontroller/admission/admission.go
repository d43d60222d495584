package admission

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/rein-k8s/rein/pkg/webhook"
	"github.com/rein-k8s/rein/samples/vmcontroller/api/vm/v1alpha1"
	"github.com/rein-k8s/rein/samples/vmcontroller/hypervisor"
)

// ImageCatalogue answers whether the hypervisor boots an image
// (*hypervisor.Client does).
type ImageCatalogue interface {
	CheckImage(ctx context.Context, image string) (*hypervisor.ImageCheck, error)
}

// SecretLookup reads a Secret from a cache; a missing one is a NotFound
// error (generic.Cache[*corev1.Secret] does).
type SecretLookup interface {
	Get(namespace, name string) (*corev1.Secret, error)
}

// Validator judges VirtualMachines before they are stored.
type Validator struct {
	// Images is the hypervisor's catalogue. Use a client without the
	// leader's guard: every replica validates, and checking reads only.
	Images ImageCatalogue
	// Secrets is the cache of Secrets; nil skips the user-data warning.
	Secrets SecretLookup
}

// Validate is a webhook.ValidateFunc for v1alpha1 VirtualMachines.
func (v *Validator) Validate(ctx context.Context, old, vm *v1alpha1.VirtualMachine) (webhook.Warnings, error) {
	if vm == nil {
		return nil, nil // a delete: nothing to judge
	}
	var warnings webhook.Warnings
	imageChanged := old == nil || old.Spec.Image != vm.Spec.Image
	if old != nil && imageChanged && old.Status.VMID != "" {
		return nil, fmt.Errorf("spec.image cannot change from %q to %q: the VM (%s) is provisioned and keeps its disk; delete the VirtualMachine and create it again with the new image",
			old.Spec.Image, vm.Spec.Image, old.Status.VMID)
	}
	if imageChanged && v.Images != nil {
		check, err := v.Images.CheckImage(ctx, vm.Spec.Image)
		switch {
		case err != nil:
			// The catalogue is a convenience: the controller still marks a
			// refused VM Failed. An unreachable hypervisor must not stop
			// every create.
			warnings = append(warnings, fmt.Sprintf("spec.image %q was not checked against the hypervisor's catalogue (%v); if the hypervisor refuses it, the VirtualMachine will fail", vm.Spec.Image, err))
		case !check.Allowed:
			return nil, fmt.Errorf("spec.image %q is not in the hypervisor's catalogue: %s", vm.Spec.Image, check.Reason)
		}
	}
	if name := vm.Spec.UserDataSecret; name != "" && v.Secrets != nil {
		_, err := v.Secrets.Get(vm.Namespace, name)
		switch {
		case apierrors.IsNotFound(err):
			warnings = append(warnings, fmt.Sprintf("spec.userDataSecret: Secret %s/%s does not exist (yet): the VM's cloud-init waits for it", vm.Namespace, name))
		case err != nil:
			warnings = append(warnings, fmt.Sprintf("spec.userDataSecret: Secret %s/%s could not be read: %v", vm.Namespace, name, err))
		}
	}
	return warnings, nil
}

// Default is a webhook.DefaultFunc for v1alpha1 VirtualMachines: a VM that
// states no memory gets v1alpha1.DefaultMemoryPerCPU per vCPU.
func Default(_ context.Context, vm *v1alpha1.VirtualMachine) error {
	if !vm.Spec.Memory.IsZero() || vm.Spec.CPU < 1 {
		return nil // stated, or no vCPU count to compute from (the schema refuses it)
	}
	vm.Spec.Memory = vm.Spec.MemoryOrDefault()
	return nil
}
