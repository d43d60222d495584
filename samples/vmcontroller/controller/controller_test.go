package controller_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/events"

	"github.com/rein-k8s/rein/pkg/apply"
	corectrl "github.com/rein-k8s/rein/pkg/controllers/core/v1"
	"github.com/rein-k8s/rein/pkg/fence"
	"github.com/rein-k8s/rein/pkg/generic"
	"github.com/rein-k8s/rein/pkg/generic/fake"
	v1alpha1 "github.com/rein-k8s/rein/samples/vmcontroller/api/vm/v1alpha1"
	"github.com/rein-k8s/rein/samples/vmcontroller/controller"
	"github.com/rein-k8s/rein/samples/vmcontroller/hypervisor"
	vmctrl "github.com/rein-k8s/rein/samples/vmcontroller/pkg/generated/controllers/vm/v1alpha1"
)

// poll is the controller's PollInterval in these tests.
const poll = 50 * time.Millisecond

// lab is the sample's handlers, registered as main registers them, on a
// fake.Env, calling a hypervisor that runs in the test.
type lab struct {
	t      *testing.T
	env    *fake.Env
	vms    vmctrl.VirtualMachineController
	server *hypervisor.Server
	hv     *hypervisor.Client // unfenced: the test's own view
	events chan string

	secrets    corectrl.SecretController
	configMaps corectrl.ConfigMapController
}

// consoleBase is the controller's ConsoleBaseURL in these tests.
const consoleBase = "https://hypervisor.example"

func newLab(t *testing.T, cfg hypervisor.Config, objects ...runtime.Object) *lab {
	t.Helper()
	scheme := runtime.NewScheme()
	if err := v1alpha1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	env, err := fake.New(scheme, objects...)
	if err != nil {
		t.Fatal(err)
	}
	quiet := logrus.New()
	quiet.SetOutput(io.Discard)
	cfg.DataDir, cfg.Logger = t.TempDir(), logrus.NewEntry(quiet)
	server, err := hypervisor.NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(server.Handler())
	t.Cleanup(func() {
		hs.Close()
		if err := server.Close(); err != nil {
			t.Error(err)
		}
	})

	recorder := events.NewFakeRecorder(64)
	l := &lab{
		t: t, env: env, server: server, events: recorder.Events,
		vms: generic.NewController[*v1alpha1.VirtualMachine, *v1alpha1.VirtualMachineList](env.Factory(), vmctrl.VirtualMachineResource),
		hv:  hypervisor.NewClient(hs.URL, hs.Client()),
	}
	// As main: hypervisor calls pass fence.Transport, which sends the
	// fencing token of the handler's context (the Env's).
	guarded := hypervisor.NewClient(hs.URL, &http.Client{Timeout: 5 * time.Second, Transport: fence.Transport(hs.Client().Transport)})
	applier, err := apply.New(env.Factory())
	if err != nil {
		t.Fatal(err)
	}
	l.secrets = generic.NewController[*corev1.Secret, *corev1.SecretList](env.Factory(), corectrl.SecretResource)
	l.configMaps = generic.NewController[*corev1.ConfigMap, *corev1.ConfigMapList](env.Factory(), corectrl.ConfigMapResource)
	if _, err := controller.Register(t.Context(), controller.Deps{
		VMs: l.vms, Secrets: l.secrets, ConfigMaps: l.configMaps, Applier: applier, Hypervisor: guarded, Recorder: recorder,
	}, controller.Options{PollInterval: poll, ConsoleBaseURL: consoleBase}); err != nil {
		t.Fatal(err)
	}
	return l
}

func virtualMachine(name, image string, power v1alpha1.PowerState) *v1alpha1.VirtualMachine {
	return &v1alpha1.VirtualMachine{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name},
		Spec:       v1alpha1.VirtualMachineSpec{CPU: 2, Memory: resource.MustParse("2Gi"), Image: image, PowerState: power},
	}
}

func (l *lab) reconcile(name string) error {
	return l.env.Reconcile(l.t.Context(), l.vms.GroupVersionKind(), "default/"+name)
}

func (l *lab) mustReconcile(name string) {
	l.t.Helper()
	if err := l.reconcile(name); err != nil {
		l.t.Fatalf("Reconcile default/%s: %v", name, err)
	}
}

func (l *lab) get(name string) *v1alpha1.VirtualMachine {
	l.t.Helper()
	vm, err := l.vms.Get(l.t.Context(), "default", name, metav1.GetOptions{})
	if err != nil {
		l.t.Fatal(err)
	}
	return vm
}

// waitState waits for the hypervisor's VM id to reach state; transitions
// take no time here (Config.Transition 0) but still end asynchronously.
func (l *lab) waitState(id string, want hypervisor.State) {
	l.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		machine, err := l.hv.Get(l.t.Context(), id)
		if err != nil {
			l.t.Fatal(err)
		}
		if machine.State == want {
			return
		}
		if time.Now().After(deadline) {
			l.t.Fatalf("VM %s is %s, want %s", id, machine.State, want)
		}
		time.Sleep(time.Millisecond)
	}
}

func (l *lab) stats() hypervisor.Stats {
	l.t.Helper()
	st, err := l.hv.Stats(l.t.Context())
	if err != nil {
		l.t.Fatal(err)
	}
	return *st
}

// takeEvents returns the events recorded so far.
func (l *lab) takeEvents() []string {
	var out []string
	for {
		select {
		case e := <-l.events:
			out = append(out, e)
		default:
			return out
		}
	}
}

func wantCondition(t *testing.T, vm *v1alpha1.VirtualMachine, typ string, status metav1.ConditionStatus, reason string) {
	t.Helper()
	c := meta.FindStatusCondition(vm.Status.Conditions, typ)
	if c == nil || c.Status != status || c.Reason != reason || c.ObservedGeneration != vm.Generation {
		t.Fatalf("condition %s: %+v, want status %s, reason %s, generation %d", typ, c, status, reason, vm.Generation)
	}
}

// A new VirtualMachine gets one VM on the hypervisor, made with its UID as
// the token; its status follows the VM to Running, polling while it is in
// transition; and a settled VirtualMachine costs no write.
func TestReconcileCreatesTheVM(t *testing.T) {
	l := newLab(t, hypervisor.Config{}, virtualMachine("web", "ubuntu-24.04", ""))

	l.mustReconcile("web")
	vm := l.get("web")
	if vm.Status.Phase != v1alpha1.PhaseProvisioning || vm.Status.VMID == "" || vm.Status.ObservedGeneration != vm.Generation {
		t.Fatalf("status after the first reconcile: %+v", vm.Status)
	}
	wantCondition(t, vm, v1alpha1.ConditionProvisioned, metav1.ConditionFalse, "Provisioning")
	wantCondition(t, vm, v1alpha1.ConditionReady, metav1.ConditionFalse, "Transitioning")
	if !slices.Equal(vm.Finalizers, []string{"rein.dev/" + controller.ChildrenHandler, "rein.dev/" + controller.CleanupHandler}) {
		t.Fatalf("finalizers %v", vm.Finalizers)
	}
	want := []fake.Request{{GVK: l.vms.GroupVersionKind(), Key: "default/web", After: poll}}
	if got := l.env.Enqueued(); !slices.Equal(got, want) {
		t.Fatalf("enqueued %v, want %v: a VM in transition is polled", got, want)
	}
	machine, err := l.hv.FindByToken(t.Context(), string(vm.UID))
	if err != nil {
		t.Fatal(err)
	}
	if machine.ID != vm.Status.VMID || machine.Name != "default/web" || machine.CPU != 2 || machine.MemoryMiB != 2048 || machine.Image != "ubuntu-24.04" || machine.Power != hypervisor.PowerOn {
		t.Fatalf("VM %+v does not match %+v", machine, vm.Spec)
	}
	if got := l.takeEvents(); len(got) != 1 || !strings.HasPrefix(got[0], "Normal Created") {
		t.Fatalf("events %q, want one Normal Created", got)
	}

	l.waitState(machine.ID, hypervisor.StateRunning)
	l.env.ClearEnqueued()
	l.mustReconcile("web")
	running := l.get("web")
	if running.Status.Phase != v1alpha1.PhaseRunning {
		t.Fatalf("phase %s, want Running", running.Status.Phase)
	}
	wantCondition(t, running, v1alpha1.ConditionProvisioned, metav1.ConditionTrue, "Created")
	wantCondition(t, running, v1alpha1.ConditionReady, metav1.ConditionTrue, string(hypervisor.StateRunning))
	if got := l.env.Enqueued(); len(got) != 0 {
		t.Fatalf("enqueued %v for a settled VM", got)
	}

	l.mustReconcile("web")
	if again := l.get("web"); again.ResourceVersion != running.ResourceVersion {
		t.Fatalf("a settled VirtualMachine was written again (%s → %s)", running.ResourceVersion, again.ResourceVersion)
	}
	st := l.stats()
	if st.VMs != 1 || st.Creates != 1 || st.Duplicates != 0 {
		t.Fatalf("hypervisor %+v, want exactly one VM, created once", st)
	}
	if st.Fencing.Unfenced != 0 || st.Fencing.Accepted == 0 || st.Fencing.Refused != 0 {
		t.Fatalf("fencing %+v: every call must carry the handler's token", st.Fencing)
	}
}

// TestReconcileWithoutMemory: a VM stored without memory (no defaulting
// webhook installed) gets the webhook's default, 1Gi per vCPU, rather than
// a create the hypervisor refuses.
func TestReconcileWithoutMemory(t *testing.T) {
	vm := virtualMachine("small", "ubuntu-24.04", "")
	vm.Spec.Memory = resource.Quantity{}
	vm.Spec.CPU = 3
	l := newLab(t, hypervisor.Config{}, vm)
	l.mustReconcile("small")
	machine, err := l.hv.FindByToken(t.Context(), string(l.get("small").UID))
	if err != nil {
		t.Fatal(err)
	}
	if machine.MemoryMiB != 3*1024 {
		t.Fatalf("memory %d MiB, want 3072 (1Gi per vCPU)", machine.MemoryMiB)
	}
}

// PowerState Off makes a VM that ends Stopped, and Ready says so.
func TestReconcilePowerOff(t *testing.T) {
	l := newLab(t, hypervisor.Config{}, virtualMachine("batch", "ubuntu-24.04", v1alpha1.PowerOff))
	l.mustReconcile("batch")
	l.waitState(l.get("batch").Status.VMID, hypervisor.StateStopped)
	l.mustReconcile("batch")
	vm := l.get("batch")
	if vm.Status.Phase != v1alpha1.PhaseStopped {
		t.Fatalf("phase %s, want Stopped", vm.Status.Phase)
	}
	wantCondition(t, vm, v1alpha1.ConditionReady, metav1.ConditionTrue, string(hypervisor.StateStopped))
}

// A refused image is a terminal Failed phase, not a retry loop: no error,
// no requeue, and no second create until the spec changes.
func TestRefusedImageFails(t *testing.T) {
	l := newLab(t, hypervisor.Config{RefusedImages: []string{"forbidden/"}}, virtualMachine("bad", "forbidden/win95", ""))

	l.mustReconcile("bad")
	vm := l.get("bad")
	if vm.Status.Phase != v1alpha1.PhaseFailed || vm.Status.VMID != "" {
		t.Fatalf("status %+v, want Phase Failed with no VM", vm.Status)
	}
	wantCondition(t, vm, v1alpha1.ConditionProvisioned, metav1.ConditionFalse, "ImageRefused")
	wantCondition(t, vm, v1alpha1.ConditionReady, metav1.ConditionFalse, "ImageRefused")
	if got := l.env.Enqueued(); len(got) != 0 {
		t.Fatalf("enqueued %v for a refused image", got)
	}
	if got := l.takeEvents(); len(got) != 1 || !strings.HasPrefix(got[0], "Warning ImageRefused") {
		t.Fatalf("events %q, want one Warning ImageRefused", got)
	}

	l.mustReconcile("bad")
	if again := l.get("bad"); again.ResourceVersion != vm.ResourceVersion {
		t.Fatal("a refused VirtualMachine was written again")
	}
	if got := l.takeEvents(); len(got) != 0 {
		t.Fatalf("events %q on the second reconcile, want none", got)
	}
	if st := l.stats(); st.VMs != 0 || st.Creates != 0 {
		t.Fatalf("hypervisor %+v, want no VM", st)
	}
}

// A hypervisor that fails is shown in the Ready condition, and the key is
// retried (Reconcile returns the error).
func TestHypervisorErrorIsRetried(t *testing.T) {
	l := newLab(t, hypervisor.Config{}, virtualMachine("web", "ubuntu-24.04", ""))
	if err := l.server.Close(); err != nil { // it answers 503 from now on
		t.Fatal(err)
	}
	err := l.reconcile("web")
	if err == nil || !strings.Contains(err.Error(), "cannot look up or create the VM") {
		t.Fatalf("Reconcile with the hypervisor down: %v", err)
	}
	vm := l.get("web")
	wantCondition(t, vm, v1alpha1.ConditionReady, metav1.ConditionFalse, "HypervisorError")
	if got := l.takeEvents(); len(got) != 1 || !strings.HasPrefix(got[0], "Warning HypervisorError") {
		t.Fatalf("events %q, want one Warning HypervisorError", got)
	}
}

// Deleting a VirtualMachine deletes its VM, then lets the finalizer go.
func TestDeleteRemovesTheVM(t *testing.T) {
	l := newLab(t, hypervisor.Config{}, virtualMachine("web", "ubuntu-24.04", ""))
	l.mustReconcile("web")
	id := l.get("web").Status.VMID

	if err := l.vms.DeleteByName(t.Context(), "default", "web", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if deleting := l.get("web"); deleting.DeletionTimestamp == nil {
		t.Fatal("the finalizer did not hold the deletion")
	}
	l.mustReconcile("web")
	if _, err := l.vms.Get(t.Context(), "default", "web", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("VirtualMachine after the cleanup: %v, want NotFound", err)
	}
	if _, err := l.hv.Get(t.Context(), id); !hypervisor.IsNotFound(err) {
		t.Fatalf("VM %s after the cleanup: %v, want NotFound", id, err)
	}
	if st := l.stats(); st.VMs != 0 || st.Deletes != 1 {
		t.Fatalf("hypervisor %+v, want the VM deleted once", st)
	}
	// The key of a deleted object runs the chain with nil: nothing to do.
	l.mustReconcile("web")
}

// A VirtualMachine that never got a VM (its image was refused) is let go
// at once.
func TestDeleteWithoutVM(t *testing.T) {
	l := newLab(t, hypervisor.Config{RefusedImages: []string{"forbidden/"}}, virtualMachine("bad", "forbidden/win95", ""))
	l.mustReconcile("bad")
	if err := l.vms.DeleteByName(t.Context(), "default", "bad", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	l.mustReconcile("bad")
	if _, err := l.vms.Get(t.Context(), "default", "bad", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("VirtualMachine after the cleanup: %v, want NotFound", err)
	}
	if st := l.stats(); st.Deletes != 0 {
		t.Fatalf("hypervisor %+v: nothing to delete", st)
	}
}

// The fake's context is a term's: a handler's hypervisor calls end with
// it.
func TestReconcileHonoursTheContext(t *testing.T) {
	l := newLab(t, hypervisor.Config{Latency: time.Minute}, virtualMachine("web", "ubuntu-24.04", ""))
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := l.env.Reconcile(ctx, l.vms.GroupVersionKind(), "default/web"); err == nil {
		t.Fatal("Reconcile returned nil with a hypervisor that never answers in time")
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("Reconcile took %v: the handler's calls must end with its context", took)
	}
}
