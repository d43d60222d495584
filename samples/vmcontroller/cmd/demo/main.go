// Command demo runs the sample on this machine and tells what happens:
// a local control plane, the hypervisor simulator, three controller
// replicas, a few VirtualMachines, a leader killed on purpose, the
// takeover, and reconciliation going on. Every replica also serves the
// sample's webhooks: a create with an image the hypervisor refuses is
// denied at admission, a VM written in v1beta1 without memory is defaulted
// and read back in v1alpha1. `make demo` runs it; Ctrl-C stops it and
// cleans everything up.
//
// With --shards N (`make demo-shards`) the replicas run sharded
// active-active instead: every replica works on the VMs of the shards it
// holds, and the demo shows the shards moving as a replica joins, one
// stops (SIGTERM) and one is killed (SIGKILL).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"syscall"
	"time"

	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	v1alpha1 "github.com/rein-k8s/rein/samples/vmcontroller/api/vm/v1alpha1"
	v1beta1 "github.com/rein-k8s/rein/samples/vmcontroller/api/vm/v1beta1"
	"github.com/rein-k8s/rein/samples/vmcontroller/controller"
	"github.com/rein-k8s/rein/samples/vmcontroller/hypervisor"
	"github.com/rein-k8s/rein/samples/vmcontroller/internal/lab"
	"github.com/rein-k8s/rein/samples/vmcontroller/pkg/generated/clientset/versioned"
)

var began = time.Now()

func say(format string, args ...any) {
	fmt.Printf("[%6.2fs] %s\n", time.Since(began).Seconds(), fmt.Sprintf(format, args...))
}

func main() {
	shards := flag.Int("shards", 0, "run the replicas sharded active-active with this many shards (0: one leader)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	run := run
	if *shards > 0 {
		run = func(ctx context.Context) error { return runSharded(ctx, *shards) }
	}
	if err := run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

func repoRoot() (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := wd; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "samples/vmcontroller/deploy/crd")); err == nil {
			return d, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("run the demo from the rein repository (make demo)")
		}
	}
}

// startLab builds the sample, starts the control plane and the
// hypervisor, and returns them with the story that tells what happens
// (its VirtualMachine watch already running); close cleans everything up.
func startLab(ctx context.Context, webhooks bool) (l *lab.Lab, s *story, close func(), err error) {
	root, err := repoRoot()
	if err != nil {
		return nil, nil, nil, err
	}
	say("building the sample and starting a local control plane (etcd + kube-apiserver)...")
	l, err = lab.Start(ctx, lab.Options{RepoRoot: root, Transition: "1500ms", RefusedImages: "bad/", Webhooks: webhooks})
	if err != nil {
		return nil, nil, nil, err
	}
	say("control plane up in %v; hypervisor at %s", l.Env.StartDuration().Round(time.Millisecond), l.HypervisorURL)
	s = newStory(l, versioned.NewForConfigOrDie(l.Env.Config()), hypervisor.NewClient(l.HypervisorURL, nil))
	go s.watch(ctx)
	return l, s, func() {
		say("cleaning up: replicas, hypervisor, control plane")
		l.Close()
	}, nil
}

func run(ctx context.Context) error {
	l, story, closeLab, err := startLab(ctx, true)
	if err != nil {
		return err
	}
	defer closeLab()

	for i := 1; i <= 3; i++ {
		p, err := l.StartReplica(ctx, fmt.Sprintf("replica-%d", i), nil)
		if err != nil {
			return err
		}
		say("started %s (pid %d): warming its cache, then campaigning", p.Name, p.Cmd.Process.Pid)
	}
	leader, err := l.AwaitLeader(ctx, nil, time.Minute)
	if err != nil {
		return err
	}

	if err := story.awaitWebhooks(ctx, time.Minute); err != nil {
		return err
	}
	say("creating VirtualMachines: web-1..web-3 (On), batch-1 (Off)")
	for _, vm := range []struct {
		name, image string
		power       v1alpha1.PowerState
	}{{"web-1", "ubuntu-24.04", v1alpha1.PowerOn}, {"web-2", "ubuntu-24.04", v1alpha1.PowerOn}, {"web-3", "debian-12", v1alpha1.PowerOn},
		{"batch-1", "alpine-3.20", v1alpha1.PowerOff}} {
		if err := story.create(ctx, vm.name, vm.image, vm.power); err != nil {
			return err
		}
	}
	say("creating legacy, whose image the hypervisor refuses: the validating webhook asks the hypervisor's catalogue first")
	if err := story.create(ctx, "legacy", "bad/windows-95", v1alpha1.PowerOn); err == nil {
		return fmt.Errorf("legacy was admitted: the validating webhook should have denied it")
	} else {
		say("legacy denied: %v", err)
	}
	if err := story.createBeta(ctx, "beta-1", "fedora-41", 4); err != nil {
		return err
	}
	if err := story.awaitSettled(ctx, 2*time.Minute); err != nil {
		return err
	}
	if err := story.showChildren(ctx, "web-1"); err != nil {
		return err
	}

	say(">>> killing the leader %s with SIGKILL: no release; a standby takes over when the lease expires (2s)", leader.Name)
	killed := time.Now()
	leader.Kill()
	next, err := l.AwaitLeader(ctx, leader, time.Minute)
	if err != nil {
		return err
	}
	takeover := time.Since(killed)
	say(">>> %s took over %v after the kill", next.Name, takeover.Round(time.Millisecond))
	if p, err := l.StartReplica(ctx, "replica-4", nil); err == nil {
		say("started %s to keep three replicas", p.Name)
	}
	leader = next

	say("creating web-4 and db-1, powering web-2 off")
	for _, name := range []string{"web-4", "db-1"} {
		if err := story.create(ctx, name, "ubuntu-24.04", v1alpha1.PowerOn); err != nil {
			return err
		}
	}
	if err := story.power(ctx, "web-2", v1alpha1.PowerOff); err != nil {
		return err
	}
	if err := story.awaitSettled(ctx, 2*time.Minute); err != nil {
		return err
	}

	say(">>> stopping the leader %s with SIGTERM: it drains, releases the lease, exits 0", leader.Name)
	termed := time.Now()
	if err := leader.Signal(syscall.SIGTERM); err != nil {
		return err
	}
	next, err = l.AwaitLeader(ctx, leader, time.Minute)
	if err != nil {
		return err
	}
	handoff := time.Since(termed)
	code, _ := leader.Wait(30 * time.Second)
	say(">>> %s took over %v after SIGTERM; %s exited %d", next.Name, handoff.Round(time.Millisecond), leader.Name, code)

	say("deleting web-3: its VM goes first, then the finalizer")
	if err := story.vms.Delete(ctx, "web-3", metav1.DeleteOptions{}); err != nil {
		return err
	}
	if err := story.awaitSettled(ctx, 2*time.Minute); err != nil {
		return err
	}
	return story.summary(ctx, takeover, handoff)
}

// story prints what changes: the leader, each VirtualMachine's phase.
type story struct {
	l      *lab.Lab
	vms    vmClient
	beta   betaClient
	hv     *hypervisor.Client
	phases map[string]string
	holder string
}

type vmClient = interface {
	Create(ctx context.Context, vm *v1alpha1.VirtualMachine, opts metav1.CreateOptions) (*v1alpha1.VirtualMachine, error)
	Patch(ctx context.Context, name string, pt types.PatchType, data []byte, opts metav1.PatchOptions, subresources ...string) (*v1alpha1.VirtualMachine, error)
	Delete(ctx context.Context, name string, opts metav1.DeleteOptions) error
	List(ctx context.Context, opts metav1.ListOptions) (*v1alpha1.VirtualMachineList, error)
}

type betaClient = interface {
	Create(ctx context.Context, vm *v1beta1.VirtualMachine, opts metav1.CreateOptions) (*v1beta1.VirtualMachine, error)
}

func newStory(l *lab.Lab, cs versioned.Interface, hv *hypervisor.Client) *story {
	return &story{l: l, vms: cs.VmV1alpha1().VirtualMachines("default"), beta: cs.VmV1beta1().VirtualMachines("default"), hv: hv, phases: map[string]string{}}
}

// awaitWebhooks waits until a replica answers the webhooks: a dry-run
// create passes.
func (s *story) awaitWebhooks(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		_, err := s.vms.Create(ctx, &v1alpha1.VirtualMachine{ObjectMeta: metav1.ObjectMeta{Name: "probe"},
			Spec: v1alpha1.VirtualMachineSpec{CPU: 1, Image: "ubuntu-24.04"}}, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		if err == nil {
			say("webhooks answering (every replica serves them, leader or not)")
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the webhooks do not answer after %v: %w", timeout, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// createBeta creates a VM in v1beta1's shape, without memory, and shows it
// as the controller sees it, in v1alpha1: converted, and defaulted.
func (s *story) createBeta(ctx context.Context, name, image string, cpu int32) error {
	say("creating %s in vm.rein.dev/v1beta1 (resources.cpu %d, boot.image %s, no memory): converted to v1alpha1 for the defaulting webhook and for storage", name, cpu, image)
	created, err := s.beta.Create(ctx, &v1beta1.VirtualMachine{ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: v1beta1.VirtualMachineSpec{Resources: v1beta1.Resources{CPU: cpu}, Boot: v1beta1.Boot{Image: image}}}, metav1.CreateOptions{})
	if err != nil {
		return err
	}
	list, err := s.vms.List(ctx, metav1.ListOptions{})
	if err != nil {
		return err
	}
	for _, vm := range list.Items {
		if vm.Name == name {
			say("%s as v1beta1: resources.memory %s; as v1alpha1: cpu %d, memory %s, image %s, powerState %s", name,
				created.Spec.Resources.Memory, vm.Spec.CPU, vm.Spec.Memory.String(), vm.Spec.Image, vm.Spec.PowerState)
		}
	}
	return nil
}

func (s *story) create(ctx context.Context, name, image string, power v1alpha1.PowerState) error {
	_, err := s.vms.Create(ctx, &v1alpha1.VirtualMachine{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec:       v1alpha1.VirtualMachineSpec{CPU: 2, Memory: resource.MustParse("2Gi"), Image: image, PowerState: power},
	}, metav1.CreateOptions{})
	return err
}

func (s *story) power(ctx context.Context, name string, p v1alpha1.PowerState) error {
	_, err := s.vms.Patch(ctx, name, types.MergePatchType, []byte(`{"spec":{"powerState":"`+string(p)+`"}}`), metav1.PatchOptions{})
	return err
}

// watch prints leader changes and phase changes until ctx ends.
func (s *story) watch(ctx context.Context) {
	for ctx.Err() == nil {
		if h := s.l.Holder(ctx); h != s.holder {
			s.holder = h
			if h == "" {
				say("lease: released, no holder")
			} else {
				say("lease: %s leads", h)
			}
		}
		if list, err := s.vms.List(ctx, metav1.ListOptions{}); err == nil {
			seen := map[string]bool{}
			for _, vm := range list.Items {
				seen[vm.Name] = true
				phase := string(vm.Status.Phase)
				if phase == "" {
					phase = "(new)"
				}
				if vm.DeletionTimestamp != nil {
					phase = "Deleting"
				}
				if old := s.phases[vm.Name]; old != phase {
					detail := ""
					if vm.Status.VMID != "" {
						detail = " (VM " + vm.Status.VMID + ")"
					}
					for _, c := range vm.Status.Conditions {
						if c.Status == metav1.ConditionFalse && c.Reason != "Transitioning" && c.Reason != "Provisioning" {
							detail += " " + c.Type + "=False: " + c.Message
							break
						}
					}
					if old == "" {
						old = "·"
					}
					say("%-8s %s → %s%s", vm.Name, old, phase, detail)
					s.phases[vm.Name] = phase
				}
			}
			for name := range s.phases {
				if !seen[name] {
					say("%-8s deleted", name)
					delete(s.phases, name)
				}
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// awaitSettled waits until every VirtualMachine is Running, Stopped or
// Failed with a current status.
func (s *story) awaitSettled(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		list, err := s.vms.List(ctx, metav1.ListOptions{})
		if err == nil {
			settled := true
			for _, vm := range list.Items {
				want := v1alpha1.PhaseRunning
				if vm.Spec.PowerState == v1alpha1.PowerOff {
					want = v1alpha1.PhaseStopped
				}
				if vm.DeletionTimestamp != nil || vm.Status.ObservedGeneration != vm.Generation ||
					(vm.Status.Phase != want && vm.Status.Phase != v1alpha1.PhaseFailed) {
					settled = false
				}
			}
			if settled {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("VirtualMachines not settled after %v", timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (s *story) summary(ctx context.Context, takeover, handoff time.Duration) error {
	list, err := s.vms.List(ctx, metav1.ListOptions{})
	if err != nil {
		return err
	}
	stats, err := s.hv.Stats(ctx)
	if err != nil {
		return err
	}
	count := map[v1alpha1.Phase]int{}
	for _, vm := range list.Items {
		count[vm.Status.Phase]++
	}
	var phases []string
	for p, n := range count {
		phases = append(phases, fmt.Sprintf("%s %d", p, n))
	}
	sort.Strings(phases)
	fmt.Println()
	fmt.Println("=== summary ===")
	fmt.Printf("takeover after SIGKILL:  %v (lease duration 2s)\n", takeover.Round(time.Millisecond))
	fmt.Printf("handoff after SIGTERM:   %v\n", handoff.Round(time.Millisecond))
	fmt.Printf("VirtualMachines:         %s\n", strings.Join(phases, ", "))
	fmt.Printf("VMs on the hypervisor:   %d\n", stats.VMs)
	fmt.Printf("duplicates:              %d\n", stats.Duplicates)
	fmt.Printf("(Go %s; logs of every process were in %s)\n", runtime.Version(), s.l.Dir)
	return nil
}

// showChildren prints the children the controller keeps for VM name (its
// console ConfigMap and cloud-init Secret), waiting a little for them.
func (s *story) showChildren(ctx context.Context, name string) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		console, err := s.l.Admin.CoreV1().ConfigMaps("default").Get(ctx, name+controller.ConsoleSuffix, metav1.GetOptions{})
		if err == nil && console.Data["vmID"] != "" {
			cloudInit, err := s.l.Admin.CoreV1().Secrets("default").Get(ctx, name+controller.CloudInitSuffix, metav1.GetOptions{})
			if err == nil {
				say("%s's children: ConfigMap %s (vmID %s, console %s), Secret %s (%d bytes of cloud-init)", name,
					console.Name, console.Data["vmID"], console.Data["console"], cloudInit.Name, len(cloudInit.Data["meta-data"])+len(cloudInit.Data["user-data"]))
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the children of %s did not appear within 30s (last error: %v)", name, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}
