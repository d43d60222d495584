package vmcontroller_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/restmapper"
	"k8s.io/utils/ptr"

	"github.com/rein-k8s/rein/internal/netfault"
	"github.com/rein-k8s/rein/internal/testkit/audit"
	"github.com/rein-k8s/rein/internal/testkit/leasehistory"
	"github.com/rein-k8s/rein/pkg/apply"
	"github.com/rein-k8s/rein/pkg/shard"
	v1alpha1 "github.com/rein-k8s/rein/samples/vmcontroller/api/vm/v1alpha1"
	"github.com/rein-k8s/rein/samples/vmcontroller/controller"
	"github.com/rein-k8s/rein/samples/vmcontroller/hypervisor"
	"github.com/rein-k8s/rein/samples/vmcontroller/internal/lab"
	"github.com/rein-k8s/rein/samples/vmcontroller/pkg/generated/clientset/versioned"
)

const vmCount = 200

func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// applyRBAC applies the Namespace, ServiceAccount and RBAC of deploy/ for
// real, so that replicas run with exactly those permissions.
func applyRBAC(t *testing.T, l *lab.Lab) {
	t.Helper()
	for _, file := range []string{"namespace.yaml", "serviceaccount.yaml", "rbac.yaml", "fencing.yaml"} {
		data, err := os.ReadFile(filepath.Join(repoRoot(), "samples/vmcontroller/deploy", file))
		if err != nil {
			t.Fatal(err)
		}
		applyManifests(t, l, file, data)
	}
}

// applyManifests applies every object of the YAML documents data (named
// by what, for errors) with server-side apply, namespaced ones without a
// namespace in lab.Namespace, as kustomize would put them.
func applyManifests(t *testing.T, l *lab.Lab, what string, data []byte) {
	t.Helper()
	dyn := dynamic.NewForConfigOrDie(l.Env.Config())
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(discovery.NewDiscoveryClientForConfigOrDie(l.Env.Config())))
	dec := yaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	for {
		var obj unstructured.Unstructured
		if err := dec.Decode(&obj.Object); err != nil {
			break
		}
		if len(obj.Object) == 0 {
			continue
		}
		gvk := obj.GroupVersionKind()
		mapping, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		ri := dyn.Resource(mapping.Resource)
		var target dynamic.ResourceInterface = ri
		if mapping.Scope.Name() == meta.RESTScopeNameNamespace {
			if obj.GetNamespace() == "" {
				obj.SetNamespace(lab.Namespace)
			}
			target = ri.Namespace(obj.GetNamespace())
		}
		data, _ := obj.MarshalJSON()
		if _, err := target.Patch(context.Background(), obj.GetName(), types.ApplyPatchType, data, metav1.PatchOptions{FieldManager: "rein-e2e", Force: ptr.To(true)}); err != nil {
			t.Fatalf("%s: apply %s %s: %v", what, gvk.Kind, obj.GetName(), err)
		}
	}
}

type fixture struct {
	t       *testing.T
	lab     *lab.Lab
	vms     versioned.Interface
	hv      *hypervisor.Client
	ns      string
	serial  int
	user    string
	flipped map[string]bool // names whose power was flipped from the initial
	leases  *leasehistory.History
	// userData is the shared user-data Secret's content, as last set.
	userData string
	// replicaArgs are the flags startReplica adds.
	replicaArgs []string
}

// awaitDelivered waits until p's proxies hold no more bytes.
func (f *fixture) awaitDelivered(p *lab.Process) {
	f.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for p.HypervisorPath.HeldBytes() > 0 || p.APIPath.HeldBytes() > 0 {
		if time.Now().After(deadline) {
			f.t.Fatalf("%s: held bytes not delivered after 30s", p.Name)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// checkAPIWritersFenced reads the audit log: every successful write whose
// field manager names a replica (--server-side-fencing) must have reached
// the apiserver while that replica held the Lease, by the holders' acquire
// times. It fails the test otherwise, and logs how many writes it checked
// and how many late ones the apiserver refused.
func (f *fixture) checkAPIWritersFenced() {
	f.t.Helper()
	prefix := "rein/" + lab.Namespace + "/" + lab.LeaseName + "/"
	checked, refused := 0, 0
	_, err := audit.Read(f.lab.Env, 0, func(ev *audit.Event) {
		u, err := url.Parse(ev.RequestURI)
		if err != nil {
			return
		}
		writer, ok := strings.CutPrefix(u.Query().Get("fieldManager"), prefix)
		if !ok {
			return
		}
		if ev.ResponseStatus.Code == 403 {
			refused++
		}
		if ev.ResponseStatus.Code >= 300 {
			return
		}
		checked++
		if holder := f.leases.HolderAt(ev.RequestReceived); holder != writer {
			f.t.Errorf("%s %s/%s by %s received %s while %q held the lease (answered %d)", ev.Verb, ev.ObjectRef.Resource, ev.ObjectRef.Name,
				writer, ev.RequestReceived.Format("15:04:05.000000"), holder, ev.ResponseStatus.Code)
		}
	})
	if err != nil {
		f.t.Fatal(err)
	}
	if checked == 0 {
		f.t.Fatal("the audit log has no write naming a replica as its field manager: is --server-side-fencing on?")
	}
	f.t.Logf("API writes by replicas: %d admitted, each while its writer held the lease; %d refused by the fencing policy", checked, refused)
}

// fault sends sig to the leader and says whether it arrived. On a machine
// loaded far past its cores a leader can miss its renew deadline by itself
// and exit 1 (lease lost) just before the fault: a failover the test did
// not cause, but one all the same. The round goes on with the successor,
// and every check after it (convergence, no duplicates, fencing) holds
// either way.
func (f *fixture) fault(leader *lab.Process, sig syscall.Signal) bool {
	err := leader.Signal(sig)
	if errors.Is(err, os.ErrProcessDone) {
		f.t.Logf("%s exited before %v (it lost its lease by itself): the round goes on with its successor", leader.Name, sig)
		return false
	}
	if err != nil {
		f.t.Fatal(err)
	}
	return true
}

func (f *fixture) startReplica() *lab.Process {
	f.t.Helper()
	f.serial++
	user, err := f.lab.Env.AddUser(f.user, "system:serviceaccounts", "system:serviceaccounts:"+lab.Namespace)
	if err != nil {
		f.t.Fatal(err)
	}
	// Through proxies the test can black-hole, as deploy/ runs them.
	p, err := f.lab.StartProxiedReplica(f.t.Context(), fmt.Sprintf("r%d", f.serial), user, f.replicaArgs...)
	if err != nil {
		f.t.Fatal(err)
	}
	return p
}

func (f *fixture) desired(i int) v1alpha1.PowerState {
	on := i%2 == 0
	if f.flipped[vmName(i)] {
		on = !on
	}
	if on {
		return v1alpha1.PowerOn
	}
	return v1alpha1.PowerOff
}

func vmName(i int) string { return fmt.Sprintf("vm-%03d", i) }

// flip changes the power of VMs [from, to) and records it.
func (f *fixture) flip(from, to int) {
	f.t.Helper()
	for i := from; i < to; i++ {
		f.flipped[vmName(i)] = !f.flipped[vmName(i)]
		patch := fmt.Sprintf(`{"spec":{"powerState":%q}}`, f.desired(i))
		if _, err := f.vms.VmV1alpha1().VirtualMachines(f.ns).Patch(context.Background(), vmName(i), types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
			f.t.Fatal(err)
		}
	}
}

// awaitConverged waits until every VirtualMachine's status is current and
// matches its spec, and the hypervisor has exactly one VM per resource in
// the desired power state.
func (f *fixture) awaitConverged(timeout time.Duration) {
	f.t.Helper()
	deadline := time.Now().Add(timeout)
	var why string
	for time.Now().Before(deadline) {
		why = f.converged()
		if why == "" {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	f.t.Fatalf("not converged after %v: %s", timeout, why)
}

func (f *fixture) converged() string {
	ctx := context.Background()
	list, err := f.vms.VmV1alpha1().VirtualMachines(f.ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return err.Error()
	}
	machines, err := f.hv.List(ctx)
	if err != nil {
		return "hypervisor: " + err.Error()
	}
	byToken := map[string][]hypervisor.VM{}
	for _, m := range machines {
		byToken[m.Token] = append(byToken[m.Token], m)
	}
	if len(list.Items) != vmCount {
		return fmt.Sprintf("%d VirtualMachines", len(list.Items))
	}
	for _, vm := range list.Items {
		var i int
		_, _ = fmt.Sscanf(vm.Name, "vm-%d", &i)
		want := f.desired(i)
		wantPhase, wantState := v1alpha1.PhaseRunning, hypervisor.StateRunning
		if want == v1alpha1.PowerOff {
			wantPhase, wantState = v1alpha1.PhaseStopped, hypervisor.StateStopped
		}
		got := byToken[string(vm.UID)]
		switch {
		case vm.Status.ObservedGeneration != vm.Generation:
			return fmt.Sprintf("%s: observedGeneration %d, generation %d", vm.Name, vm.Status.ObservedGeneration, vm.Generation)
		case vm.Status.Phase != wantPhase:
			return fmt.Sprintf("%s: phase %s, want %s", vm.Name, vm.Status.Phase, wantPhase)
		case len(got) != 1:
			return fmt.Sprintf("%s: %d VMs on the hypervisor", vm.Name, len(got))
		case got[0].State != wantState || vm.Status.VMID != got[0].ID:
			return fmt.Sprintf("%s: VM %s is %s (status says %s), want %s", vm.Name, got[0].ID, got[0].State, vm.Status.VMID, wantState)
		case !meta.IsStatusConditionTrue(vm.Status.Conditions, v1alpha1.ConditionReady):
			return vm.Name + ": not Ready"
		}
	}
	if len(machines) != vmCount {
		return fmt.Sprintf("%d VMs on the hypervisor for %d resources", len(machines), vmCount)
	}
	return f.childrenConverged(ctx, list.Items)
}

// The user-data Secret every fifth VM names.
const userDataSecret = "shared-init"

func userDataSecretOf(i int) string {
	if i%5 == 0 {
		return userDataSecret
	}
	return ""
}

// setUserData creates or updates the shared user-data Secret.
func (f *fixture) setUserData(ctx context.Context, data string) {
	f.t.Helper()
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: userDataSecret}, Data: map[string][]byte{v1alpha1.UserDataKey: []byte(data)}}
	secrets := f.lab.Admin.CoreV1().Secrets(f.ns)
	if _, err := secrets.Update(ctx, secret, metav1.UpdateOptions{}); apierrors.IsNotFound(err) {
		_, err = secrets.Create(ctx, secret, metav1.CreateOptions{})
		if err != nil {
			f.t.Fatal(err)
		}
	} else if err != nil {
		f.t.Fatal(err)
	}
	f.userData = data
}

// children lists the objects labelled as a VM's children (set vm-children),
// ConfigMaps and Secrets, by "Kind/name".
func (f *fixture) children(ctx context.Context) (map[string]metav1.Object, error) {
	sel := metav1.ListOptions{LabelSelector: apply.SetLabel + "=" + controller.ChildrenHandler}
	out := map[string]metav1.Object{}
	cms, err := f.lab.Admin.CoreV1().ConfigMaps(f.ns).List(ctx, sel)
	if err != nil {
		return nil, err
	}
	for i := range cms.Items {
		out["ConfigMap/"+cms.Items[i].Name] = &cms.Items[i]
	}
	secrets, err := f.lab.Admin.CoreV1().Secrets(f.ns).List(ctx, sel)
	if err != nil {
		return nil, err
	}
	for i := range secrets.Items {
		out["Secret/"+secrets.Items[i].Name] = &secrets.Items[i]
	}
	return out, nil
}

// childrenConverged says what is wrong with the VMs' children, or "": each
// VM has exactly its console ConfigMap (with its VM's ID) and its
// cloud-init Secret (with the user data it names), owned by it, with
// Configured True; no other object carries the set's label (no orphans,
// no duplicates).
func (f *fixture) childrenConverged(ctx context.Context, vms []v1alpha1.VirtualMachine) string {
	children, err := f.children(ctx)
	if err != nil {
		return err.Error()
	}
	for _, vm := range vms {
		if !meta.IsStatusConditionTrue(vm.Status.Conditions, v1alpha1.ConditionConfigured) {
			return vm.Name + ": not Configured"
		}
		console, ok := children["ConfigMap/"+vm.Name+controller.ConsoleSuffix].(*corev1.ConfigMap)
		if !ok {
			return vm.Name + ": no console ConfigMap"
		}
		delete(children, "ConfigMap/"+console.Name)
		cloudInit, ok := children["Secret/"+vm.Name+controller.CloudInitSuffix].(*corev1.Secret)
		if !ok {
			return vm.Name + ": no cloud-init Secret"
		}
		delete(children, "Secret/"+cloudInit.Name)
		wantUserData := controller.DefaultUserData
		if vm.Spec.UserDataSecret != "" {
			wantUserData = f.userData
		}
		switch {
		case console.Data["vmID"] != vm.Status.VMID:
			return fmt.Sprintf("%s: console ConfigMap says VM %q, status %q", vm.Name, console.Data["vmID"], vm.Status.VMID)
		case string(cloudInit.Data["user-data"]) != wantUserData:
			return fmt.Sprintf("%s: user-data %q, want %q", vm.Name, cloudInit.Data["user-data"], wantUserData)
		case console.Labels[apply.OwnerLabel] != string(vm.UID) || cloudInit.Labels[apply.OwnerLabel] != string(vm.UID):
			return vm.Name + ": a child is not labelled with its VM's UID"
		}
	}
	for name := range children {
		return fmt.Sprintf("%d children of no VirtualMachine, e.g. %s", len(children), name)
	}
	return ""
}

// checkQuiet watches the audit log for window after convergence: the
// replicas' requests that change anything must be Lease renewals only.
func (f *fixture) checkQuiet(window time.Duration) {
	f.t.Helper()
	offset, err := audit.Read(f.lab.Env, 0, func(*audit.Event) {})
	if err != nil {
		f.t.Fatal(err)
	}
	from := time.Now()
	time.Sleep(window) // the window is the measurement, not a wait for an event
	writes, reads, renewals := map[string]int{}, 0, 0
	if _, err := audit.Read(f.lab.Env, offset, func(ev *audit.Event) {
		if ev.User.Username != f.user || ev.RequestReceived.Before(from) {
			return
		}
		switch ev.Verb {
		case "create", "update", "patch", "delete", "deletecollection":
		default:
			reads++
			return
		}
		if ev.ObjectRef.Resource == "leases" {
			renewals++
			return
		}
		if strings.HasSuffix(ev.ObjectRef.Resource, "accessreviews") || ev.ObjectRef.Resource == "tokenreviews" {
			reads++ // a review is a question, not a write: the RBAC check of a replica that just started
			return
		}
		writes[ev.Verb+" "+ev.ObjectRef.Resource]++
	}); err != nil {
		f.t.Fatal(err)
	}
	if len(writes) > 0 {
		f.t.Errorf("quiet window of %v after convergence: the replicas wrote %v (want no write but Lease renewals)", window, writes)
	}
	f.t.Logf("quiet window of %v: %d writes besides %d Lease renewals, %d reads and watches", window, len(writes), renewals, reads)
}

// TestVirtualMachinesSurviveFailovers: 3 replicas bound only to deploy/'s
// RBAC manage 200 VirtualMachines while the leader is killed, terminated
// and paused past its lease and the hypervisor restarts; afterwards every
// resource has exactly one VM in the desired power state with a current
// status, and deleting them all leaves no VM behind.
func TestVirtualMachinesSurviveFailovers(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the sample")
	}
	ctx := context.Background()
	f := newFixture(t)
	l := f.lab
	leaseCtx, stopLeases := context.WithCancel(ctx)
	leases, err := leasehistory.Watch(leaseCtx, l.Env.Config(), lab.Namespace, lab.LeaseName)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { stopLeases(); leases.Wait() }()
	f.leases = leases
	f.replicaArgs = []string{"--server-side-fencing"} // fenced by the apiserver too, as deploy/ runs them
	for range 3 {
		f.startReplica()
	}
	leader, err := l.AwaitLeader(ctx, nil, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	f.createVMs(ctx)
	f.awaitConverged(2 * time.Minute)
	t.Logf("200 VMs converged under %s", leader.Name)

	// Three rounds of SIGKILL, SIGTERM, SIGSTOP past the lease and a
	// black-holed leader, each while the leader has work; the hypervisor
	// restarts once.
	for round := range 3 {
		// SIGKILL the leader mid-work.
		f.flip(0, 50)
		leader.Kill()
		f.startReplica()
		if leader, err = l.AwaitLeader(ctx, leader, 30*time.Second); err != nil {
			t.Fatal(err)
		}
		f.awaitConverged(2 * time.Minute)
		t.Logf("round %d: after SIGKILL %s leads, converged", round+1, leader.Name)

		// SIGTERM: drain, release, exit 0.
		f.flip(50, 100)
		want := 0 // drained and released
		if !f.fault(leader, syscall.SIGTERM) {
			want = 1
		}
		if code, err := leader.Wait(30 * time.Second); err != nil || code != want {
			t.Fatalf("SIGTERM: exit %d, %v; want %d", code, err, want)
		}
		f.startReplica()
		if leader, err = l.AwaitLeader(ctx, leader, 30*time.Second); err != nil {
			t.Fatal(err)
		}

		// The hypervisor restarts (once) while work is pending: nothing is lost.
		f.flip(100, 150)
		if round == 0 {
			l.Hypervisor.Kill()
			if err := l.StartHypervisor(ctx); err != nil {
				t.Fatal(err)
			}
		}
		f.awaitConverged(2 * time.Minute)
		t.Logf("round %d: after SIGTERM (and a hypervisor restart in round 1) %s leads, converged", round+1, leader.Name)

		// SIGSTOP past the lease: a standby takes over; the woken leader exits 1.
		stoppedBySignal := f.fault(leader, syscall.SIGSTOP)
		stopped := leader
		if leader, err = l.AwaitLeader(ctx, stopped, 30*time.Second); err != nil {
			t.Fatal(err)
		}
		f.flip(150, 200)
		f.awaitConverged(2 * time.Minute)
		if stoppedBySignal {
			if err := stopped.Signal(syscall.SIGCONT); err != nil {
				t.Fatal(err)
			}
		}
		if code, err := stopped.Wait(30 * time.Second); err != nil || code != 1 {
			t.Fatalf("woken leader: exit %d, %v; want 1 (lease lost)", code, err)
		}
		f.startReplica() // keep three
		f.awaitConverged(time.Minute)

		// A black hole: the leader's power calls to the hypervisor are held
		// in the network (its reads still flow), then its path to the
		// apiserver is held too, so that it loses the lease. A standby takes
		// over and converges with a newer fencing token; then the held bytes
		// are delivered, after the sender's term: the hypervisor must refuse
		// the calls for VMs the new term has touched.
		hole := leader
		hole.HypervisorPath.HoldFrom(func(chunk []byte) bool {
			return bytes.HasPrefix(chunk, []byte("POST ")) || bytes.HasPrefix(chunk, []byte("DELETE "))
		})
		f.flip(0, 50)
		heldCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err := hole.HypervisorPath.AwaitHeld(heldCtx)
		cancel()
		if err != nil {
			t.Fatalf("round %d: the leader sent no power call into the black hole: %v", round+1, err)
		}
		hole.APIPath.Hold(netfault.Both)
		if leader, err = l.AwaitLeader(ctx, hole, 30*time.Second); err != nil {
			t.Fatal(err)
		}
		f.awaitConverged(2 * time.Minute)
		if code, err := hole.Wait(30 * time.Second); err != nil || code != 1 {
			t.Fatalf("black-holed leader: exit %d, %v; want 1 (lease lost)", code, err)
		}
		before, err := f.hv.Stats(ctx)
		if err != nil {
			t.Fatal(err)
		}
		hole.HypervisorPath.Release()
		hole.APIPath.Release()
		f.awaitDelivered(hole)
		f.startReplica() // keep three
		f.awaitConverged(time.Minute)
		stats, err := f.hv.Stats(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if stats.Duplicates != 0 || stats.VMs != vmCount {
			t.Fatalf("hypervisor stats %+v: want %d VMs and no duplicates", stats, vmCount)
		}
		// Every mutating call of the controller carried its term's fencing
		// token (fence.Transport), so the hypervisor could refuse a stale one.
		if stats.Fencing.Unfenced != 0 || stats.Fencing.Accepted == 0 {
			t.Fatalf("hypervisor fencing %+v: want every controller call to carry a token", stats.Fencing)
		}
		t.Logf("round %d: after SIGSTOP/SIGCONT and a black hole %s leads; stale calls refused in the black hole: %d; hypervisor %+v",
			round+1, leader.Name, stats.Fencing.Refused-before.Fencing.Refused, *stats)
	}
	stats, err := f.hv.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// The path is exercised: stale calls arrived and were refused; none
	// was applied after a newer term's call to the same VM.
	if stats.Fencing.Refused == 0 || stats.Fencing.OutOfOrder != 0 {
		t.Errorf("hypervisor fencing %+v: want stale calls refused ≥ 1 and applied out of order 0", stats.Fencing)
	}
	t.Logf("hypervisor fencing after 3 SIGSTOPs and 3 black holes: %+v", stats.Fencing)
	f.checkAPIWritersFenced()

	// Related watches, for real: the user-data Secret changes, and every VM
	// that names it gets the new data in its cloud-init Secret; a child
	// deleted by hand and one edited by hand are restored.
	f.setUserData(ctx, "#cloud-config\npackages: [caddy]\n")
	if err := l.Admin.CoreV1().Secrets(f.ns).Delete(ctx, vmName(1)+controller.CloudInitSuffix, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Admin.CoreV1().ConfigMaps(f.ns).Patch(ctx, vmName(2)+controller.ConsoleSuffix, types.MergePatchType,
		[]byte(`{"data":{"vmID":"vm-forged"}}`), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	f.awaitConverged(time.Minute)
	t.Log("user data changed, a child deleted and one edited by hand: every VM's children are as declared again")

	// A quiet window: converged, nothing changes, and the replicas send no
	// write at all (Lease renewals aside): apply compares with the caches,
	// the status helpers with the status.
	f.checkQuiet(30 * time.Second)

	// Delete everything: each VM goes, then its finalizer.
	if err := f.vms.VmV1alpha1().VirtualMachines(f.ns).DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		list, err := f.vms.VmV1alpha1().VirtualMachines(f.ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		machines, err := f.hv.List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		children, err := f.children(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(list.Items) == 0 && len(machines) == 0 && len(children) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after deleting all: %d VirtualMachines, %d VMs, %d children left", len(list.Items), len(machines), len(children))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// leftOnHypervisor lists the hypervisor's VMs whose token (the UID of the
// VirtualMachine they were made for) is no existing VirtualMachine's, and
// how many VirtualMachines exist.
func (f *fixture) leftOnHypervisor(ctx context.Context) (orphans []hypervisor.VM, resources int) {
	f.t.Helper()
	list, err := f.vms.VmV1alpha1().VirtualMachines(f.ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		f.t.Fatal(err)
	}
	machines, err := f.hv.List(ctx)
	if err != nil {
		f.t.Fatal(err)
	}
	uids := map[string]bool{}
	for _, vm := range list.Items {
		uids[string(vm.UID)] = true
	}
	for _, m := range machines {
		if !uids[m.Token] {
			orphans = append(orphans, m)
		}
	}
	return orphans, len(list.Items)
}

// TestVirtualMachinesDeletedAtOnce is issue 26 on the sample: the
// provisioning handler, registered before vm-cleanup, creates a VM on the
// hypervisor; VirtualMachines deleted 0-200 ms after they were created
// must leave no VM behind. The vm-cleanup finalizer is on each before any
// handler runs, and the engine cleans up after an object the apiserver
// deleted past it (kubernetes#77988).
func TestVirtualMachinesDeletedAtOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the sample")
	}
	const pairs, concurrency = 200, 20
	ctx := context.Background()
	f := newFixture(t)
	f.startReplica()
	if _, err := f.lab.AwaitLeader(ctx, nil, time.Minute); err != nil {
		t.Fatal(err)
	}
	vms := f.vms.VmV1alpha1().VirtualMachines(f.ns)
	errs := make(chan error, pairs)
	sem := make(chan struct{}, concurrency)
	var wg sync.WaitGroup
	for i := range pairs {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			name := fmt.Sprintf("flash-%03d", i)
			vm := &v1alpha1.VirtualMachine{ObjectMeta: metav1.ObjectMeta{Name: name},
				Spec: v1alpha1.VirtualMachineSpec{CPU: 1, Memory: resource.MustParse("512Mi"), Image: "ubuntu-24.04", PowerState: v1alpha1.PowerOn}}
			if _, err := vms.Create(ctx, vm, metav1.CreateOptions{}); err != nil {
				errs <- err
				return
			}
			time.Sleep(time.Duration(i%201) * time.Millisecond) // the scenario's delay, not a wait for an event
			if err := vms.Delete(ctx, name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	// Every VirtualMachine goes (its finalizers released by the cleanup),
	// then no VM may be left for one that no longer exists.
	deadline := time.Now().Add(2 * time.Minute)
	for {
		orphans, resources := f.leftOnHypervisor(ctx)
		if resources == 0 && len(orphans) == 0 {
			break
		}
		if time.Now().After(deadline) {
			ids := make([]string, len(orphans))
			for i, m := range orphans {
				ids[i] = m.ID + " (" + m.Name + ")"
			}
			t.Fatalf("after %d create/delete pairs: %d VirtualMachines left; %d VMs on the hypervisor for no VirtualMachine: %v", pairs, resources, len(orphans), ids)
		}
		time.Sleep(200 * time.Millisecond)
	}
	stats, err := f.hv.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d create/delete pairs: hypervisor creates %d, deletes %d, VMs left %d", pairs, stats.Creates, stats.Deletes, stats.VMs)
	if stats.Creates == 0 {
		t.Error("the hypervisor created no VM: the test exercised nothing")
	}
}

// TestInvalidAndRefused: the CRD schema refuses invalid VirtualMachines at
// the apiserver; a refused image gives a Failed phase with the reason in a
// condition and an Event, and the replica keeps running.
func TestInvalidAndRefused(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the sample")
	}
	ctx := context.Background()
	l, err := lab.Start(ctx, lab.Options{RepoRoot: repoRoot(), Race: true, Transition: "100ms", RefusedImages: "bad/"})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	dyn := dynamic.NewForConfigOrDie(l.Env.Config()).Resource(schema.GroupVersionResource{Group: "vm.rein.dev", Version: "v1alpha1", Resource: "virtualmachines"}).Namespace("default")
	for _, tc := range []struct {
		name string
		spec map[string]any
		want string
	}{
		{"zero-cpu", map[string]any{"cpu": int64(0), "memory": "1Gi", "image": "ubuntu"}, "spec.cpu"},
		{"bad-power", map[string]any{"cpu": int64(1), "memory": "1Gi", "image": "ubuntu", "powerState": "Maybe"}, "spec.powerState"},
	} {
		obj := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "vm.rein.dev/v1alpha1", "kind": "VirtualMachine",
			"metadata": map[string]any{"name": tc.name}, "spec": tc.spec}}
		_, err := dyn.Create(ctx, obj, metav1.CreateOptions{})
		if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want Invalid naming %s", tc.name, err, tc.want)
		} else {
			t.Logf("%s refused: %v", tc.name, err)
		}
	}

	replica, err := l.StartReplica(ctx, "solo", nil)
	if err != nil {
		t.Fatal(err)
	}
	vms := versioned.NewForConfigOrDie(l.Env.Config()).VmV1alpha1().VirtualMachines("default")
	if _, err := vms.Create(ctx, &v1alpha1.VirtualMachine{ObjectMeta: metav1.ObjectMeta{Name: "refused"},
		Spec: v1alpha1.VirtualMachineSpec{CPU: 2, Memory: resource.MustParse("1Gi"), Image: "bad/windows-95"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(time.Minute)
	for {
		vm, err := vms.Get(ctx, "refused", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		cond := meta.FindStatusCondition(vm.Status.Conditions, v1alpha1.ConditionProvisioned)
		if vm.Status.Phase == v1alpha1.PhaseFailed && cond != nil && cond.Reason == "ImageRefused" && strings.Contains(cond.Message, "bad/windows-95") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("status %+v", vm.Status)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// The recorder sends events in the background: wait for it.
	for found := false; !found; {
		events, err := l.Admin.EventsV1().Events("default").List(ctx, metav1.ListOptions{
			FieldSelector: fields.OneTermEqualSelector("regarding.name", "refused").String()})
		if err != nil {
			t.Fatal(err)
		}
		for _, ev := range events.Items {
			found = found || (ev.Reason == "ImageRefused" && ev.Type == corev1.EventTypeWarning)
		}
		if !found && time.Now().After(deadline) {
			t.Fatalf("no ImageRefused warning Event among %d events", len(events.Items))
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !replica.Running() {
		t.Fatalf("the replica exited:\n%s", replica.Log())
	}
}

// newFixture starts the lab as the e2e tests run it (race-built replicas;
// election timings with room for a loaded CI machine: race-built replicas
// behind proxies, beside other packages' tests, where a leader that loses
// its lease by itself would spoil a fault cycle), applies deploy/'s RBAC
// and makes the VMs' namespace. When the test fails, it logs the tail of
// every process's log.
func newFixture(t *testing.T) *fixture {
	t.Helper()
	ctx := context.Background()
	l, err := lab.Start(ctx, lab.Options{RepoRoot: repoRoot(), Race: true, Transition: "200ms", RefusedImages: "bad/",
		LeaseDuration: "4s", RenewDeadline: "3s", RetryPeriod: "500ms"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.Close)
	applyRBAC(t, l)
	f := &fixture{t: t, lab: l, vms: versioned.NewForConfigOrDie(l.Env.Config()), hv: hypervisor.NewClient(l.HypervisorURL, nil),
		ns: "vms", user: "system:serviceaccount:vm-system:vmcontroller", flipped: map[string]bool{}}
	t.Cleanup(func() {
		if t.Failed() {
			for _, p := range append(l.Replicas, l.Hypervisor) {
				log := p.Log()
				if len(log) > 6000 {
					log = log[len(log)-6000:]
				}
				t.Logf("--- %s:\n%s", p.Name, log)
			}
		}
	})
	if _, err := l.Admin.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: f.ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	return f
}

// createVMs creates the shared user-data Secret and vmCount
// VirtualMachines in their desired power states.
func (f *fixture) createVMs(ctx context.Context) {
	f.t.Helper()
	f.setUserData(ctx, "#cloud-config\npackages: [nginx]\n")
	for i := range vmCount {
		vm := &v1alpha1.VirtualMachine{
			ObjectMeta: metav1.ObjectMeta{Name: vmName(i)},
			Spec: v1alpha1.VirtualMachineSpec{CPU: int32(1 + i%4), Memory: resource.MustParse("512Mi"),
				Image: "ubuntu-24.04", PowerState: f.desired(i), UserDataSecret: userDataSecretOf(i)},
		}
		if _, err := f.vms.VmV1alpha1().VirtualMachines(f.ns).Create(ctx, vm, metav1.CreateOptions{}); err != nil {
			f.t.Fatal(err)
		}
	}
}

// shardHolders lists the sharded group's records (deploy/'s group is the
// lease name) and returns each shard's holder identity.
func (f *fixture) shardHolders(ctx context.Context, shards int) []string {
	f.t.Helper()
	list, err := f.lab.Admin.CoordinationV1().Leases(lab.Namespace).List(ctx, metav1.ListOptions{
		LabelSelector: shard.LabelGroup + "=" + lab.LeaseName + "," + shard.LabelRole + "=shard"})
	if err != nil {
		f.t.Fatal(err)
	}
	out := make([]string, shards)
	for _, l := range list.Items {
		for s := range shards {
			if l.Name == shard.RecordName(lab.LeaseName, s) && l.Spec.HolderIdentity != nil {
				out[s] = *l.Spec.HolderIdentity
			}
		}
	}
	return out
}

// awaitShards waits until every shard is held by a replica whose POD_NAME
// is in live, with counts within one of each other.
func (f *fixture) awaitShards(ctx context.Context, shards int, timeout time.Duration, live ...*lab.Process) []string {
	f.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		holders := f.shardHolders(ctx, shards)
		counts := map[string]int{}
		ok := true
		for _, h := range holders {
			base, _, _ := strings.Cut(h, "_") // identities are <POD_NAME>_<random>
			counts[base]++
			if !slices.ContainsFunc(live, func(p *lab.Process) bool { return p.Name == base }) {
				ok = false
			}
		}
		lo, hi := shards, 0
		for _, p := range live {
			lo, hi = min(lo, counts[p.Name]), max(hi, counts[p.Name])
		}
		if ok && hi-lo <= 1 {
			return holders
		}
		if time.Now().After(deadline) {
			f.t.Fatalf("shards not balanced over %d replicas after %v: %v", len(live), timeout, holders)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestVirtualMachinesSharded runs the sample sharded (--shards 8) as three
// replicas that all work: every VM converges, through a SIGKILL, a SIGTERM,
// a SIGSTOP past the lease and a black hole; the black-holed replica's
// held hypervisor calls arrive after its shards moved, and the hypervisor
// refuses those whose shard token is older than one it accepted.
func TestVirtualMachinesSharded(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the sample")
	}
	const shards = 8
	ctx := context.Background()
	f := newFixture(t)
	f.replicaArgs = []string{"--shards", strconv.Itoa(shards)}
	// deploy/rbac.yaml is the single-leader deployment's; sharded replicas
	// need the member Leases and shard records too: the roles their own
	// --print-rbac prints replace it.
	rbac, err := f.lab.PrintRBAC(ctx, f.replicaArgs...)
	if err != nil {
		t.Fatal(err)
	}
	applyManifests(t, f.lab, "vmcontroller --print-rbac --shards", rbac)
	start := f.startReplica
	live := []*lab.Process{start(), start(), start()}
	f.awaitShards(ctx, shards, time.Minute, live...)
	f.createVMs(ctx)
	f.awaitConverged(2 * time.Minute)
	t.Logf("%d VMs converged with 3 sharded replicas", vmCount)
	drop := func(p *lab.Process) {
		live = slices.DeleteFunc(live, func(x *lab.Process) bool { return x == p })
	}

	// SIGKILL one mid-work; a new replica joins.
	f.flip(0, 50)
	live[0].Kill()
	drop(live[0])
	live = append(live, start())
	f.awaitShards(ctx, shards, 30*time.Second, live...)
	f.awaitConverged(2 * time.Minute)
	t.Log("after SIGKILL and a join: converged")

	// SIGTERM: the replica hands its shards on and exits 0.
	f.flip(50, 100)
	term := live[0]
	if err := term.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code, err := term.Wait(30 * time.Second); err != nil || code != 0 {
		t.Fatalf("SIGTERM: exit %d, %v", code, err)
	}
	drop(term)
	f.awaitShards(ctx, shards, 30*time.Second, live...)
	f.awaitConverged(2 * time.Minute)
	live = append(live, start())
	f.awaitShards(ctx, shards, 30*time.Second, live...)
	f.awaitConverged(time.Minute)
	t.Log("after SIGTERM and a join: converged")
	// Shards moved to the newcomer, whose handlers ran on every key of
	// them: none may write when the cluster already matches.
	f.checkQuiet(10 * time.Second)

	// SIGSTOP past the lease: its shards move; woken, it rejoins.
	stopped := live[0]
	if err := stopped.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	f.awaitShards(ctx, shards, 30*time.Second, live[1:]...)
	f.flip(100, 150)
	f.awaitConverged(2 * time.Minute)
	if err := stopped.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	f.awaitShards(ctx, shards, 30*time.Second, live...)
	t.Log("after SIGSTOP past the lease and SIGCONT: converged; the woken replica rejoined")

	// A black hole: one replica's power calls are held in the network,
	// then its path to the apiserver too; its shards move; the held calls
	// arrive after the new holders' calls.
	before, err := f.hv.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	hole := live[1]
	hole.HypervisorPath.HoldFrom(func(chunk []byte) bool {
		return bytes.HasPrefix(chunk, []byte("POST ")) || bytes.HasPrefix(chunk, []byte("DELETE "))
	})
	f.flip(0, vmCount)
	heldCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	err = hole.HypervisorPath.AwaitHeld(heldCtx)
	cancel()
	if err != nil {
		t.Fatalf("the replica sent no power call into the black hole: %v", err)
	}
	hole.APIPath.Hold(netfault.Both)
	others := slices.DeleteFunc(slices.Clone(live), func(p *lab.Process) bool { return p == hole })
	f.awaitShards(ctx, shards, 30*time.Second, others...)
	f.awaitConverged(2 * time.Minute)
	hole.HypervisorPath.Release()
	hole.APIPath.Release()
	f.awaitDelivered(hole)
	f.awaitShards(ctx, shards, 30*time.Second, live...)
	f.awaitConverged(time.Minute)
	stats, err := f.hv.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("black hole: stale calls refused %d; hypervisor %+v", stats.Fencing.Refused-before.Fencing.Refused, *stats)
	if stats.Duplicates != 0 || stats.VMs != vmCount {
		t.Fatalf("hypervisor stats %+v: want %d VMs and no duplicates", stats, vmCount)
	}
	if stats.Fencing.Unfenced != 0 || stats.Fencing.Accepted == 0 || stats.Fencing.OutOfOrder != 0 {
		t.Fatalf("hypervisor fencing %+v: want every call to carry a shard token and none applied out of order", stats.Fencing)
	}
}
