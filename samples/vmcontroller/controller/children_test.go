package controller_test

import (
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/rein-k8s/rein/pkg/apply"
	"github.com/rein-k8s/rein/pkg/related"
	v1alpha1 "github.com/rein-k8s/rein/samples/vmcontroller/api/vm/v1alpha1"
	"github.com/rein-k8s/rein/samples/vmcontroller/controller"
	"github.com/rein-k8s/rein/samples/vmcontroller/hypervisor"
)

func (l *lab) configMap(name string) (*corev1.ConfigMap, error) {
	return l.configMaps.Get(l.t.Context(), "default", name, metav1.GetOptions{})
}

func (l *lab) secret(name string) (*corev1.Secret, error) {
	return l.secrets.Get(l.t.Context(), "default", name, metav1.GetOptions{})
}

// A VirtualMachine gets its console ConfigMap (with the VM's ID and
// console address once the VM exists) and its cloud-init Secret, owned by
// it and labelled as the set vm-children; Configured is True; a settled
// VM's children are not written again; they go with the VM.
func TestChildren(t *testing.T) {
	l := newLab(t, hypervisor.Config{}, virtualMachine("web", "ubuntu-24.04", ""))
	l.mustReconcile("web")
	vm := l.get("web")
	wantCondition(t, vm, v1alpha1.ConditionConfigured, metav1.ConditionTrue, "Applied")

	console, err := l.configMap("web" + controller.ConsoleSuffix)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"image": "ubuntu-24.04", "cpu": "2", "memory": "2Gi", "vmID": vm.Status.VMID,
		"console": consoleBase + "/vms/" + vm.Status.VMID + "/console"}
	for k, v := range want {
		if console.Data[k] != v {
			t.Errorf("console ConfigMap %s = %q, want %q", k, console.Data[k], v)
		}
	}
	if ref := metav1.GetControllerOf(console); ref == nil || ref.UID != vm.UID || console.Labels[apply.SetLabel] != controller.ChildrenHandler {
		t.Errorf("console ConfigMap: controller %+v, labels %v: want the VM as controller and set %s", ref, console.Labels, controller.ChildrenHandler)
	}
	cloudInit, err := l.secret("web" + controller.CloudInitSuffix)
	if err != nil {
		t.Fatal(err)
	}
	if got := string(cloudInit.Data["user-data"]); got != controller.DefaultUserData {
		t.Errorf("user-data %q, want the default %q", got, controller.DefaultUserData)
	}
	if got := string(cloudInit.Data["meta-data"]); !strings.Contains(got, "instance-id: "+string(vm.UID)) || !strings.Contains(got, "local-hostname: web") {
		t.Errorf("meta-data %q", got)
	}

	l.waitState(vm.Status.VMID, hypervisor.StateRunning)
	l.mustReconcile("web")
	console, cloudInit = mustChildren(t, l, "web")
	l.mustReconcile("web")
	again, againInit := mustChildren(t, l, "web")
	if again.ResourceVersion != console.ResourceVersion || againInit.ResourceVersion != cloudInit.ResourceVersion {
		t.Errorf("settled children written again: ConfigMap %s → %s, Secret %s → %s",
			console.ResourceVersion, again.ResourceVersion, cloudInit.ResourceVersion, againInit.ResourceVersion)
	}

	// A hand edit is reverted by the next reconcile (which the related
	// watch on the children triggers in a running controller).
	edited := again.DeepCopy()
	edited.Data["vmID"] = "vm-forged"
	if _, err := l.configMaps.Update(t.Context(), edited); err != nil {
		t.Fatal(err)
	}
	if keys, err := related.OwnerOf(l.vms.GroupVersionKind())(edited); err != nil || !slices.Equal(keys, []string{"default/web"}) {
		t.Errorf("a child resolves to %v (%v), want its VM default/web", keys, err)
	}
	l.mustReconcile("web")
	if restored, _ := mustChildren(t, l, "web"); restored.Data["vmID"] != vm.Status.VMID {
		t.Errorf("hand edit kept: vmID %q, want %q", restored.Data["vmID"], vm.Status.VMID)
	}

	if err := l.vms.DeleteByName(t.Context(), "default", "web", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	l.mustReconcile("web")
	if _, err := l.configMap("web" + controller.ConsoleSuffix); !apierrors.IsNotFound(err) {
		t.Errorf("console ConfigMap after the VM's deletion: %v, want NotFound", err)
	}
	if _, err := l.secret("web" + controller.CloudInitSuffix); !apierrors.IsNotFound(err) {
		t.Errorf("cloud-init Secret after the VM's deletion: %v, want NotFound", err)
	}
}

func mustChildren(t *testing.T, l *lab, vm string) (*corev1.ConfigMap, *corev1.Secret) {
	t.Helper()
	console, err := l.configMap(vm + controller.ConsoleSuffix)
	if err != nil {
		t.Fatal(err)
	}
	cloudInit, err := l.secret(vm + controller.CloudInitSuffix)
	if err != nil {
		t.Fatal(err)
	}
	return console, cloudInit
}

// A VM's user data comes from the Secret spec.userDataSecret names: while
// it is missing, Configured is False with the reason and an Event, the VM
// is still provisioned, and the status is not otherwise changed; once it
// exists (the related watch re-runs the VM), and whenever it changes, the
// cloud-init Secret follows.
func TestUserDataSecret(t *testing.T) {
	withUserData := virtualMachine("web", "ubuntu-24.04", "")
	withUserData.Spec.UserDataSecret = "web-init"
	l := newLab(t, hypervisor.Config{}, withUserData)

	err := l.reconcile("web")
	if err == nil || !strings.Contains(err.Error(), "user-data Secret default/web-init (spec.userDataSecret) does not exist") {
		t.Fatalf("Reconcile without the user-data Secret: %v", err)
	}
	vm := l.get("web")
	wantCondition(t, vm, v1alpha1.ConditionConfigured, metav1.ConditionFalse, "GenerateFailed")
	if vm.Status.VMID == "" {
		t.Error("the VM was not provisioned: a missing user-data Secret must only hold the children back")
	}
	if got := l.takeEvents(); !slices.ContainsFunc(got, func(e string) bool { return strings.HasPrefix(e, "Warning GenerateFailed") }) {
		t.Errorf("events %q, want a Warning GenerateFailed", got)
	}
	if _, err := l.secret("web" + controller.CloudInitSuffix); !apierrors.IsNotFound(err) {
		t.Errorf("cloud-init Secret without user data: %v, want none", err)
	}

	source := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "web-init"},
		Data: map[string][]byte{v1alpha1.UserDataKey: []byte("#cloud-config\npackages: [nginx]\n")}}
	if _, err := l.secrets.Create(t.Context(), source); err != nil {
		t.Fatal(err)
	}
	resolve := related.Referencing(l.vms.Informer().GetIndexer(), controller.UserDataIndex)
	if keys, err := resolve(source); err != nil || !slices.Equal(keys, []string{"default/web"}) {
		t.Fatalf("the user-data Secret resolves to %v (%v), want default/web", keys, err)
	}
	l.mustReconcile("web")
	wantCondition(t, l.get("web"), v1alpha1.ConditionConfigured, metav1.ConditionTrue, "Applied")
	if _, cloudInit := mustChildren(t, l, "web"); string(cloudInit.Data["user-data"]) != "#cloud-config\npackages: [nginx]\n" {
		t.Errorf("user-data %q, want the Secret's", cloudInit.Data["user-data"])
	}

	source, err = l.secret("web-init")
	if err != nil {
		t.Fatal(err)
	}
	source.Data[v1alpha1.UserDataKey] = []byte("#cloud-config\npackages: [caddy]\n")
	if source, err = l.secrets.Update(t.Context(), source); err != nil {
		t.Fatal(err)
	}
	l.mustReconcile("web")
	if _, cloudInit := mustChildren(t, l, "web"); string(cloudInit.Data["user-data"]) != "#cloud-config\npackages: [caddy]\n" {
		t.Errorf("user-data %q after the Secret changed, want the new one", cloudInit.Data["user-data"])
	}

	delete(source.Data, v1alpha1.UserDataKey)
	if _, err := l.secrets.Update(t.Context(), source); err != nil {
		t.Fatal(err)
	}
	if err := l.reconcile("web"); err == nil || !strings.Contains(err.Error(), `has no key "userdata"`) {
		t.Errorf("Reconcile with the key gone: %v", err)
	}
}

// Register names every missing dependency at once.
func TestRegisterNamesMissingDeps(t *testing.T) {
	_, err := controller.Register(t.Context(), controller.Deps{}, controller.Options{})
	want := "controller: Register: Deps.VMs, Deps.Secrets, Deps.ConfigMaps, Deps.Applier, Deps.Hypervisor, Deps.Recorder missing"
	if err == nil || err.Error() != want {
		t.Fatalf("Register with no deps: %v, want %q", err, want)
	}
}
