package controller

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	v1alpha1 "github.com/rein-k8s/rein/samples/vmcontroller/api/vm/v1alpha1"
)

// The children of a VirtualMachine, kept by the generating handler
// ChildrenHandler as the apply set ChildrenSet:
//
//   - <name>-console, a ConfigMap telling how to reach the VM: its
//     hypervisor ID and console address, image and size (what a user or
//     a support tool reads without hypervisor credentials);
//   - <name>-cloud-init, a Secret holding the cloud-init data the VM boots
//     with: meta-data (instance ID and hostname) and user-data, from the
//     Secret spec.userDataSecret names (key "userdata"), or an empty
//     #cloud-config without one.
const (
	ConsoleSuffix   = "-console"
	CloudInitSuffix = "-cloud-init"
	// DefaultUserData is the user data of a VM that names no Secret.
	DefaultUserData = "#cloud-config\n"
)

// UserDataIndex indexes VirtualMachines by the user-data Secret they
// reference, so that a change of that Secret re-runs them
// (related.Referencing). The Secret is in the VM's namespace: the index
// function returns its name, and the typed cache stores it scoped by that
// namespace, as the Secret's key ("namespace/name").
const UserDataIndex = "vm.rein.dev/user-data-secret"

func indexByUserDataSecret(vm *v1alpha1.VirtualMachine) ([]string, error) {
	if vm.Spec.UserDataSecret == "" {
		return nil, nil
	}
	return []string{vm.Spec.UserDataSecret}, nil
}

// children computes vm's children from its spec, the status the
// provision handler wrote before it in the chain (the hypervisor's VM ID),
// and its user-data Secret. A missing Secret or key is an error: the
// generating handler keeps the last status, sets Configured=False with
// this message and records an Event; the Secret's creation re-runs the VM.
func (c *Controller) children(ctx context.Context, vm *v1alpha1.VirtualMachine, status v1alpha1.VirtualMachineStatus) ([]runtime.Object, v1alpha1.VirtualMachineStatus, error) {
	userData := []byte(DefaultUserData)
	if name := vm.Spec.UserDataSecret; name != "" {
		secret, err := c.secrets.Get(vm.Namespace, name)
		switch {
		case apierrors.IsNotFound(err):
			return nil, status, fmt.Errorf("user-data Secret %s/%s (spec.userDataSecret) does not exist: create it or clear the field", vm.Namespace, name)
		case err != nil:
			return nil, status, fmt.Errorf("read user-data Secret %s/%s: %w", vm.Namespace, name, err)
		}
		data, ok := secret.Data[v1alpha1.UserDataKey]
		if !ok {
			return nil, status, fmt.Errorf("user-data Secret %s/%s has no key %q (the cloud-init user data)", vm.Namespace, name, v1alpha1.UserDataKey)
		}
		userData = data
	}
	console := map[string]string{
		"image":  vm.Spec.Image,
		"cpu":    fmt.Sprint(vm.Spec.CPU),
		"memory": vm.Spec.Memory.String(),
	}
	if status.VMID != "" {
		console["vmID"] = status.VMID
		console["console"] = c.consoleBase + "/vms/" + status.VMID + "/console"
	}
	return []runtime.Object{
		&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: vm.Name + ConsoleSuffix}, Data: console},
		&corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: vm.Name + CloudInitSuffix},
			Type:       corev1.SecretTypeOpaque,
			Data: map[string][]byte{
				"meta-data": fmt.Appendf(nil, "instance-id: %s\nlocal-hostname: %s\n", vm.UID, vm.Name),
				"user-data": userData,
			},
		},
	}, status, nil
}
