// Package controller is the sample's reconcile logic: it turns each
// VirtualMachine into exactly one VM on the hypervisor, keeps its power
// state, reports status and conditions, keeps the VM's child objects (a
// console ConfigMap and a cloud-init Secret) as declared, and deletes the
// VM and its children before the VirtualMachine goes.
//
// Exactly one VM per resource holds across failovers because the
// hypervisor's create is idempotent on a client token, and the token is the
// VirtualMachine's UID: a new leader that reconciles a resource its
// predecessor was creating finds (or creates) the same VM.
package controller

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"

	"github.com/rein-k8s/rein/pkg/apply"
	corectrl "github.com/rein-k8s/rein/pkg/controllers/core/v1"
	"github.com/rein-k8s/rein/pkg/generic"
	"github.com/rein-k8s/rein/pkg/related"
	v1alpha1 "github.com/rein-k8s/rein/samples/vmcontroller/api/vm/v1alpha1"
	"github.com/rein-k8s/rein/samples/vmcontroller/hypervisor"
	vmctrl "github.com/rein-k8s/rein/samples/vmcontroller/pkg/generated/controllers/vm/v1alpha1"
)

// Handler names; "vm-cleanup" is also the finalizer rein.dev/vm-cleanup,
// and "vm-children" the apply set of a VM's children, whose OnRemove
// (finalizer rein.dev/vm-children) deletes them with the VM.
const (
	ProvisionHandler = "vm-provision"
	ChildrenHandler  = "vm-children"
	CleanupHandler   = "vm-cleanup"
)

// Options tune the controller.
type Options struct {
	// PollInterval is how soon a VM in transition is looked at again
	// (default 500ms).
	PollInterval time.Duration
	// ConsoleBaseURL starts the console address written in each VM's
	// console ConfigMap (<base>/vms/<id>/console): the hypervisor's URL as
	// users reach it.
	ConsoleBaseURL string
}

// Deps are what the handlers work with; all are required.
type Deps struct {
	VMs vmctrl.VirtualMachineController
	// Secrets is where user-data Secrets are read from (its cache) and
	// whose changes re-run the VMs that reference them; ConfigMaps and
	// Secrets are also the kinds of a VM's children.
	Secrets    corectrl.SecretController
	ConfigMaps corectrl.ConfigMapController
	// Applier keeps the children (apply.New on the factory).
	Applier    *apply.Applier
	Hypervisor *hypervisor.Client
	Recorder   events.EventRecorder
}

// Controller holds what the handlers need.
type Controller struct {
	vms         vmctrl.VirtualMachineController
	secrets     corectrl.SecretCache
	hv          *hypervisor.Client
	recorder    events.EventRecorder
	poll        time.Duration
	consoleBase string
}

// Register adds the sample's handlers to d.VMs until ctx ends, in chain
// order: provisioning on the hypervisor (a status handler), the children
// (a generating handler, after provisioning so that the console ConfigMap
// carries the VM's ID), and the hypervisor cleanup on deletion. Two
// related watches re-run a VM when one of its children is changed or
// deleted by hand, and when its user-data Secret changes. Call it before
// the caches start.
func Register(ctx context.Context, d Deps, opts Options) (*Controller, error) {
	var missing []string
	for _, dep := range []struct {
		name  string
		isNil bool
	}{{"VMs", d.VMs == nil}, {"Secrets", d.Secrets == nil}, {"ConfigMaps", d.ConfigMaps == nil},
		{"Applier", d.Applier == nil}, {"Hypervisor", d.Hypervisor == nil}, {"Recorder", d.Recorder == nil}} {
		if dep.isNil {
			missing = append(missing, dep.name)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("controller: Register: Deps.%s missing", strings.Join(missing, ", Deps."))
	}
	c := &Controller{vms: d.VMs, secrets: d.Secrets.Cache(), hv: d.Hypervisor, recorder: d.Recorder,
		poll: opts.PollInterval, consoleBase: strings.TrimSuffix(opts.ConsoleBaseURL, "/")}
	if c.poll <= 0 {
		c.poll = 500 * time.Millisecond
	}
	set, err := d.Applier.Set(ChildrenHandler, []generic.Resource{corectrl.ConfigMapResource, corectrl.SecretResource})
	if err != nil {
		return nil, err
	}
	// The status helper writes the status only when it changed.
	vmctrl.RegisterVirtualMachineStatusHandler(ctx, d.VMs, ProvisionHandler, c.reconcile)
	vmctrl.RegisterVirtualMachineGeneratingHandler(ctx, d.VMs, set, ChildrenHandler, c.children,
		generic.GeneratingOptions[v1alpha1.VirtualMachineStatus]{
			Conditions:    func(s *v1alpha1.VirtualMachineStatus) *[]metav1.Condition { return &s.Conditions },
			ConditionType: v1alpha1.ConditionConfigured,
			Recorder:      d.Recorder,
		})
	d.VMs.OnRemove(ctx, CleanupHandler, c.cleanup)
	// The index comes after the handlers: a controller's kind is cached
	// (partitioned, with --partition-caches) as its first handler
	// registers, and an earlier cache read would make it a full cache.
	if err := d.VMs.Cache().AddIndexer(UserDataIndex, indexByUserDataSecret); err != nil {
		return nil, fmt.Errorf("controller: index VirtualMachines by user-data Secret: %w", err)
	}

	err = errors.Join(
		related.Owns(ctx, d.VMs, d.ConfigMaps.Informer(), d.Secrets.Informer()),
		related.Watch(ctx, "vm-user-data", related.Referencing(d.VMs.Informer().GetIndexer(), UserDataIndex), d.VMs, d.Secrets.Informer()),
	)
	if err != nil {
		return nil, err
	}
	return c, nil
}

// reconcile computes the status of vm, creating its VM and setting its
// power on the way. A hypervisor error is shown in the conditions and
// retried with backoff; a refused image is a terminal Failed phase (until
// the spec changes), not a crash loop. ctx ends with this replica's term:
// a hypervisor call in flight is cut off when the lease is lost.
func (c *Controller) reconcile(ctx context.Context, vm *v1alpha1.VirtualMachine, status v1alpha1.VirtualMachineStatus) (v1alpha1.VirtualMachineStatus, error) {
	// A refused image stays refused until the spec (its generation) changes.
	refusedAlready := status.Phase == v1alpha1.PhaseFailed && provisionedReason(status) == "ImageRefused" &&
		status.ObservedGeneration == vm.Generation
	status.ObservedGeneration = vm.Generation
	desired := vm.Spec.PowerState
	if desired == "" {
		desired = v1alpha1.PowerOn
	}

	machine, err := c.hv.FindByToken(ctx, string(vm.UID))
	if hypervisor.IsNotFound(err) {
		if refusedAlready {
			return status, nil
		}
		machine, err = c.hv.Create(ctx, hypervisor.CreateRequest{
			Token: string(vm.UID), Name: vm.Namespace + "/" + vm.Name,
			CPU: vm.Spec.CPU, MemoryMiB: mebibytes(vm), Image: vm.Spec.Image, Power: hypervisor.Power(desired),
		})
		if hypervisor.IsImageRefused(err) {
			status.Phase = v1alpha1.PhaseFailed
			setCondition(&status, vm, v1alpha1.ConditionProvisioned, metav1.ConditionFalse, "ImageRefused", fmt.Sprintf("image %s: %v", vm.Spec.Image, err))
			setCondition(&status, vm, v1alpha1.ConditionReady, metav1.ConditionFalse, "ImageRefused", "the VM could not be created")
			c.recorder.Eventf(vm, nil, corev1.EventTypeWarning, "ImageRefused", "CreateVM", "the hypervisor refused image %s: %v", vm.Spec.Image, err)
			return status, nil
		}
		if err == nil {
			c.recorder.Eventf(vm, nil, corev1.EventTypeNormal, "Created", "CreateVM", "VM %s created", machine.ID)
		}
	}
	if err != nil {
		return c.hypervisorFailed(vm, status, "cannot look up or create the VM", err)
	}
	status.VMID = machine.ID

	if machine.Power != hypervisor.Power(desired) {
		if machine, err = c.hv.SetPower(ctx, machine.ID, hypervisor.Power(desired)); err != nil {
			return c.hypervisorFailed(vm, status, "cannot set power "+string(desired), err)
		}
	}

	switch machine.State {
	case hypervisor.StateRunning:
		status.Phase = v1alpha1.PhaseRunning
	case hypervisor.StateStopped:
		status.Phase = v1alpha1.PhaseStopped
	default: // provisioning, starting, stopping
		status.Phase = v1alpha1.PhaseProvisioning
	}
	if machine.State == hypervisor.StateProvisioning {
		setCondition(&status, vm, v1alpha1.ConditionProvisioned, metav1.ConditionFalse, "Provisioning", "the hypervisor is creating VM "+machine.ID)
	} else {
		setCondition(&status, vm, v1alpha1.ConditionProvisioned, metav1.ConditionTrue, "Created", "VM "+machine.ID+" exists")
	}
	wantState := hypervisor.StateRunning
	if desired == v1alpha1.PowerOff {
		wantState = hypervisor.StateStopped
	}
	if machine.State != wantState {
		setCondition(&status, vm, v1alpha1.ConditionReady, metav1.ConditionFalse, "Transitioning", fmt.Sprintf("VM is %s, wanted %s", machine.State, wantState))
		// Poll the hypervisor: it has no way to tell us when it is done.
		return status, generic.RequeueAfter(c.poll)
	}
	setCondition(&status, vm, v1alpha1.ConditionReady, metav1.ConditionTrue, string(machine.State), "VM "+machine.ID+" is "+string(machine.State))
	return status, nil
}

// hypervisorFailed records a hypervisor error in the conditions (the
// status is written) and returns it, so the key is retried with backoff.
func (c *Controller) hypervisorFailed(vm *v1alpha1.VirtualMachine, status v1alpha1.VirtualMachineStatus, what string, err error) (v1alpha1.VirtualMachineStatus, error) {
	setCondition(&status, vm, v1alpha1.ConditionReady, metav1.ConditionFalse, "HypervisorError", what+": "+err.Error())
	c.recorder.Eventf(vm, nil, corev1.EventTypeWarning, "HypervisorError", "CallHypervisor", "%s: %v", what, err)
	return status, fmt.Errorf("%s: %w", what, err)
}

// cleanup deletes the VM of a VirtualMachine that is being deleted; the
// finalizer goes only when the VM is gone.
func (c *Controller) cleanup(ctx context.Context, key string, vm *v1alpha1.VirtualMachine) (*v1alpha1.VirtualMachine, error) {
	machine, err := c.hv.FindByToken(ctx, string(vm.UID))
	if hypervisor.IsNotFound(err) {
		return vm, nil
	}
	if err != nil {
		return nil, fmt.Errorf("look up the VM of %s: %w", key, err)
	}
	if err := c.hv.Delete(ctx, machine.ID); err != nil && !hypervisor.IsNotFound(err) {
		c.recorder.Eventf(vm, nil, corev1.EventTypeWarning, "HypervisorError", "DeleteVM", "cannot delete VM %s: %v", machine.ID, err)
		return nil, fmt.Errorf("delete VM %s of %s: %w", machine.ID, key, err)
	}
	return vm, nil
}

// mebibytes is the VM's memory in MiB. A VM stored without memory (the
// defaulting webhook was not installed) gets what the webhook would have
// given it, rather than a create the hypervisor refuses.
func mebibytes(vm *v1alpha1.VirtualMachine) int64 {
	const mib = 1 << 20
	memory := vm.Spec.MemoryOrDefault()
	return (memory.Value() + mib - 1) / mib
}

func setCondition(status *v1alpha1.VirtualMachineStatus, vm *v1alpha1.VirtualMachine, typ string, s metav1.ConditionStatus, reason, message string) {
	meta.SetStatusCondition(&status.Conditions, metav1.Condition{
		Type: typ, Status: s, Reason: reason, Message: message, ObservedGeneration: vm.Generation,
	})
}

func provisionedReason(status v1alpha1.VirtualMachineStatus) string {
	if c := meta.FindStatusCondition(status.Conditions, v1alpha1.ConditionProvisioned); c != nil {
		return c.Reason
	}
	return ""
}
