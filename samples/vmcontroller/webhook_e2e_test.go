package vmcontroller_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"

	v1alpha1 "github.com/rein-k8s/rein/samples/vmcontroller/api/vm/v1alpha1"
	v1beta1 "github.com/rein-k8s/rein/samples/vmcontroller/api/vm/v1beta1"
	"github.com/rein-k8s/rein/samples/vmcontroller/internal/lab"
	"github.com/rein-k8s/rein/samples/vmcontroller/pkg/generated/clientset/versioned"
)

// warnings collects the warnings the apiserver passes on.
type warningLog struct {
	mu   sync.Mutex
	list []string
}

func (w *warningLog) HandleWarningHeader(_ int, _ string, text string) {
	w.mu.Lock()
	w.list = append(w.list, text)
	w.mu.Unlock()
}

func (w *warningLog) take() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := w.list
	w.list = nil
	return out
}

// TestWebhooks runs the sample as deploy/ does, with three replicas
// serving the webhooks rein-gen generated from the API's markers and
// methods, registered with the apiserver from the generated
// deploy/webhook/webhooks.yaml and CRD (pointed at 127.0.0.1). The
// replicas run as deploy/'s service account, with its RBAC, and keep their
// certificate in a Secret they make themselves; the leader writes its CA
// bundle into the configurations and the CRD (until then the apiserver
// trusts none of them). Then the
// validator denies an image the hypervisor's catalogue refuses and an
// image change after provisioning, and warns of a missing user-data
// Secret; the defaulter computes memory from vCPUs, also for v1beta1
// objects (converted to v1alpha1 for it); v1beta1 and v1alpha1 objects
// read back in the other version; and admission keeps answering while the
// leader stops.
func TestWebhooks(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the sample")
	}
	ctx := context.Background()
	l, err := lab.Start(ctx, lab.Options{RepoRoot: repoRoot(), Race: true, Transition: "100ms", RefusedImages: "forbidden/", Webhooks: true,
		WebhookSecret: "vmcontroller-webhook-cert", LeaseDuration: "4s", RenewDeadline: "3s", RetryPeriod: "500ms"})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	applyRBAC(t, l)
	sa, err := l.Env.AddUser("system:serviceaccount:vm-system:vmcontroller", "system:serviceaccounts", "system:serviceaccounts:"+lab.Namespace)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, p := range l.Replicas {
				log := p.Log()
				if len(log) > 4000 {
					log = log[len(log)-4000:]
				}
				t.Logf("--- %s:\n%s", p.Name, log)
			}
		}
	})
	for i := range 3 {
		if _, err := l.StartReplica(ctx, fmt.Sprintf("hook-%d", i), sa); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := l.AwaitLeader(ctx, nil, time.Minute); err != nil {
		t.Fatal(err)
	}
	var seen warningLog
	cfg := rest.CopyConfig(l.Env.Config())
	cfg.WarningHandler = &seen
	clients := versioned.NewForConfigOrDie(cfg)
	alpha := clients.VmV1alpha1().VirtualMachines("default")
	beta := clients.VmV1beta1().VirtualMachines("default")
	newVM := func(name, image string, cpu int32) *v1alpha1.VirtualMachine {
		return &v1alpha1.VirtualMachine{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: v1alpha1.VirtualMachineSpec{CPU: cpu, Image: image}}
	}
	// The webhooks answer once a replica has the shared certificate and
	// the leader has written its CA bundle: the first dry run that passes
	// says so.
	deadline := time.Now().Add(time.Minute)
	for {
		_, err := alpha.Create(ctx, newVM("probe", "ubuntu", 1), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the webhooks do not answer: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	seen.take()

	// Denied with the validator's message.
	_, err = alpha.Create(ctx, newVM("refused", "forbidden/win95", 1), metav1.CreateOptions{})
	if err == nil || !strings.Contains(err.Error(), `spec.image "forbidden/win95" is not in the hypervisor's catalogue`) {
		t.Fatalf("create with a refused image: %v, want the validator's denial", err)
	}
	t.Logf("denied: %v", err)

	// Defaulted: no memory, 3 vCPUs → 3Gi.
	created, err := alpha.Create(ctx, newVM("defaulted", "ubuntu", 3), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if created.Spec.Memory.String() != "3Gi" {
		t.Fatalf("memory %q, want the default 3Gi", created.Spec.Memory.String())
	}

	// Allowed with a warning.
	withSecret := newVM("warned", "ubuntu", 1)
	withSecret.Spec.UserDataSecret = "not-yet"
	if _, err := alpha.Create(ctx, withSecret, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if got := seen.take(); len(got) != 1 || !strings.Contains(got[0], "Secret default/not-yet does not exist") {
		t.Fatalf("warnings %q, want one about Secret default/not-yet", got)
	}

	// v1beta1 written, read as v1alpha1; defaulted through conversion.
	b := &v1beta1.VirtualMachine{ObjectMeta: metav1.ObjectMeta{Name: "beta"},
		Spec: v1beta1.VirtualMachineSpec{Resources: v1beta1.Resources{CPU: 2}, Boot: v1beta1.Boot{Image: "debian"}, Running: ptr.To(false)}}
	gotB, err := beta.Create(ctx, b, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if m := gotB.Spec.Resources.Memory; m == nil || m.String() != "2Gi" {
		t.Fatalf("v1beta1 memory %v, want the default 2Gi set on v1alpha1 and converted back", m)
	}
	asAlpha, err := alpha.Get(ctx, "beta", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if s := asAlpha.Spec; s.CPU != 2 || s.Memory.Cmp(resource.MustParse("2Gi")) != 0 || s.Image != "debian" || s.PowerState != v1alpha1.PowerOff {
		t.Fatalf("the v1beta1 object read as v1alpha1: %+v", s)
	}
	// v1alpha1 written (above), read as v1beta1.
	asBeta, err := beta.Get(ctx, "defaulted", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if s := asBeta.Spec; s.Resources.CPU != 3 || s.Resources.Memory == nil || s.Resources.Memory.String() != "3Gi" || s.Boot.Image != "ubuntu" || s.Running == nil || !*s.Running {
		t.Fatalf("the v1alpha1 object read as v1beta1: %+v", s)
	}
	// The controller, working in v1alpha1, provisions the VM made in
	// v1beta1; its status reads back in v1beta1.
	deadline = time.Now().Add(time.Minute)
	for {
		got, err := beta.Get(ctx, "beta", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if got.Status.Phase == string(v1alpha1.PhaseStopped) && got.Status.ID != "" {
			b = got
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("v1beta1 status %+v, want Stopped with an ID", got.Status)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Old, new and status together: a provisioned VM keeps its image.
	b.Spec.Boot.Image = "fedora"
	if _, err := beta.Update(ctx, b, metav1.UpdateOptions{}); err == nil || !strings.Contains(err.Error(), `spec.image cannot change from "debian" to "fedora"`) {
		t.Fatalf("image change after provisioning: %v, want the validator's denial", err)
	}

	// Admission through a leader stop: dry-run creates back to back from
	// two clients while the leader is stopped; none may fail.
	leader := l.Leader(ctx)
	if leader == nil {
		t.Fatal("no leader")
	}
	var sent, failed atomic.Int64
	var firstErr atomic.Value
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for c := range 2 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				_, err := alpha.Create(ctx, newVM(fmt.Sprintf("flood-%d-%d", c, i), "ubuntu", 1), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
				sent.Add(1)
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err)
				}
			}
		})
	}
	awaitSent := func(n int64) {
		target := sent.Load() + n
		for sent.Load() < target {
			time.Sleep(10 * time.Millisecond)
		}
	}
	awaitSent(50)
	stopped := time.Now()
	if err := leader.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	successor, err := l.AwaitLeader(ctx, leader, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	took := time.Since(stopped)
	if _, err := leader.Wait(time.Minute); err != nil {
		t.Fatal(err)
	}
	awaitSent(50) // answered by the others after the leader is gone
	close(stop)
	wg.Wait()
	t.Logf("%d dry-run creates while %s stopped (%s led %v after the signal): %d failed", sent.Load(), leader.Name, successor.Name, took.Round(time.Millisecond), failed.Load())
	if failed.Load() > 0 {
		err, _ := firstErr.Load().(error)
		t.Fatalf("%d admission requests failed through the leader's stop, the first: %v", failed.Load(), err)
	}
}
