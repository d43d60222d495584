// Package lab runs the sample on one machine: a real control plane
// (pkg/testenv) with the VirtualMachine CRD, the hypervisor simulator and
// several controller replicas as separate processes. `make demo` and the
// sample's end-to-end test both use it.
package lab

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/ptr"

	"github.com/rein-k8s/rein/internal/netfault"
	"github.com/rein-k8s/rein/pkg/testenv"
)

// Namespace holds the controller's Lease, as in deploy/.
const Namespace = "vm-system"

// LeaseName is the controller's Lease.
const LeaseName = "vmcontroller"

// Options configure a lab.
type Options struct {
	// RepoRoot is the rein checkout (binaries are built from it).
	RepoRoot string
	// Race builds the binaries with the race detector (tests do).
	Race bool
	// Timings of the election, as flag values (default 2s/1.5s/0.3s: a
	// demo and tests want failovers they can wait for).
	LeaseDuration, RenewDeadline, RetryPeriod string
	// Transition is the hypervisor's provisioning/power time (default 1s).
	Transition string
	// RefusedImages is the hypervisor's --refuse-images.
	RefusedImages string
	// ErrorRate is the hypervisor's --error-rate.
	ErrorRate string
	// Webhooks has every replica serve the admission and conversion
	// webhooks, registered with the apiserver as deploy/webhook and the
	// CRD's conversion stanza say, at a balancer in front of the replicas.
	Webhooks bool
	// WebhookSecret, with Webhooks, has the replicas keep their
	// certificate in this Secret of Namespace, as deploy/ runs them
	// (--webhook-secret): the first makes it, and the leader writes its CA
	// bundle into the configurations and the CRD. Empty: a certificate the
	// lab makes, in a folder (--webhook-cert-dir, as cert-manager mounts
	// it).
	WebhookSecret string
}

// Lab is a running sample.
type Lab struct {
	opts       Options
	Env        *testenv.Env
	Admin      kubernetes.Interface
	Dir        string
	bin        string
	Hypervisor *Process
	// HypervisorURL is where the hypervisor listens (stable across
	// restarts of the hypervisor).
	HypervisorURL string
	hvAddr        string

	webhooks *webhooks

	mu       sync.Mutex
	Replicas []*Process
}

// Process is one child process.
type Process struct {
	Name    string
	Cmd     *exec.Cmd
	LogPath string
	exited  chan struct{}
	code    int
	// APIPath and HypervisorPath are the replica's network paths to the
	// apiserver and the hypervisor, when it was started by
	// StartProxiedReplica: a test cuts or black-holes them.
	APIPath, HypervisorPath *netfault.Proxy
}

// Start builds the binaries, starts the control plane with the CRD and the
// hypervisor. Close undoes it all.
func Start(ctx context.Context, opts Options) (*Lab, error) {
	if opts.LeaseDuration == "" {
		opts.LeaseDuration, opts.RenewDeadline, opts.RetryPeriod = "2s", "1500ms", "300ms"
	}
	if opts.Transition == "" {
		opts.Transition = "1s"
	}
	dir, err := os.MkdirTemp("", "rein-lab-")
	if err != nil {
		return nil, err
	}
	l := &Lab{opts: opts, Dir: dir, bin: filepath.Join(dir, "bin")}
	ok := false
	defer func() {
		if !ok {
			l.Close()
		}
	}()
	build := []string{"build", "-o", l.bin + "/"}
	if opts.Race {
		build = append(build, "-race")
	}
	build = append(build, "./samples/vmcontroller/cmd/vmcontroller", "./samples/vmcontroller/cmd/hypervisor")
	cmd := exec.CommandContext(ctx, "go", build...)
	cmd.Dir = opts.RepoRoot
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("build the sample: %w\n%s", err, out)
	}
	l.Env, err = testenv.Start(testenv.Options{
		BinDir:  filepath.Join(opts.RepoRoot, "bin"),
		CRDDirs: []string{filepath.Join(opts.RepoRoot, "samples/vmcontroller/deploy/crd")},
		Audit:   true,
	})
	if err != nil {
		return nil, err
	}
	if l.Admin, err = l.Env.Admin().Clientset(); err != nil {
		return nil, err
	}
	// The replicas' Lease lives there, as in deploy/.
	if _, err := l.Admin.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: Namespace}}, metav1.CreateOptions{}); err != nil {
		return nil, err
	}
	if err := l.StartHypervisor(ctx); err != nil {
		return nil, err
	}
	if opts.Webhooks {
		if err := l.startWebhooks(ctx); err != nil {
			return nil, fmt.Errorf("register the webhooks: %w", err)
		}
	}
	ok = true
	return l, nil
}

// StartHypervisor starts (or restarts) the hypervisor on its data folder
// and, after the first start, on the same address.
func (l *Lab) StartHypervisor(ctx context.Context) error {
	listen := l.hvAddr
	if listen == "" {
		listen = "127.0.0.1:0"
	}
	args := []string{"--listen", listen, "--data-dir", filepath.Join(l.Dir, "hypervisor"), "--transition", l.opts.Transition}
	if l.opts.RefusedImages != "" {
		args = append(args, "--refuse-images", l.opts.RefusedImages)
	}
	if l.opts.ErrorRate != "" {
		args = append(args, "--error-rate", l.opts.ErrorRate)
	}
	p, err := l.spawn("hypervisor", filepath.Join(l.bin, "hypervisor"), args, nil)
	if err != nil {
		return err
	}
	addr, err := p.awaitLine(ctx, "listening on ", 30*time.Second)
	if err != nil {
		return err
	}
	l.hvAddr = strings.Fields(addr)[0]
	l.HypervisorURL = "http://" + l.hvAddr
	l.Hypervisor = p
	return nil
}

// StartReplica starts a controller replica named name (its POD_NAME),
// connecting as user (nil: the admin).
func (l *Lab) StartReplica(ctx context.Context, name string, user *testenv.User, extra ...string) (*Process, error) {
	if user == nil {
		user = l.Env.Admin()
	}
	args := append([]string{
		"--kubeconfig", user.KubeconfigPath, "--hypervisor-url", l.HypervisorURL,
		"--leader-elect-resource-namespace", Namespace,
		"--leader-elect-lease-duration", l.opts.LeaseDuration,
		"--leader-elect-renew-deadline", l.opts.RenewDeadline,
		"--leader-elect-retry-period", l.opts.RetryPeriod,
		"--metrics-bind-address", "0", "--health-probe-bind-address", "127.0.0.1:0",
		"--drain-grace", "5s",
	}, extra...)
	if l.webhooks != nil {
		args = append(args, l.webhooks.replicaArgs()...)
	}
	p, err := l.spawn(name, filepath.Join(l.bin, "vmcontroller"), args, []string{"POD_NAME=" + name, "POD_NAMESPACE=" + Namespace})
	if err != nil {
		return nil, err
	}
	if l.webhooks != nil {
		if err := l.webhooks.join(ctx, p); err != nil {
			p.Kill()
			return nil, err
		}
	}
	l.mu.Lock()
	l.Replicas = append(l.Replicas, p)
	l.mu.Unlock()
	return p, nil
}

// PrintRBAC runs the controller with --print-rbac and the flags a replica
// StartReplica starts with extra would have that change what it needs,
// and returns the roles and bindings it prints (for the ServiceAccount
// vmcontroller in Namespace).
func (l *Lab) PrintRBAC(ctx context.Context, extra ...string) ([]byte, error) {
	args := append([]string{"--print-rbac", "--hypervisor-url", l.HypervisorURL,
		"--leader-elect-resource-namespace", Namespace, "--rbac-service-account", Namespace + "/vmcontroller"}, extra...)
	if l.webhooks != nil {
		args = append(args, l.webhooks.replicaArgs()...)
	}
	cmd := exec.CommandContext(ctx, filepath.Join(l.bin, "vmcontroller"), args...)
	cmd.Env = append(os.Environ(), "POD_NAMESPACE="+Namespace)
	out, err := cmd.Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		return nil, fmt.Errorf("vmcontroller --print-rbac: %w\n%s", err, stderr)
	}
	return out, nil
}

// StartProxiedReplica is StartReplica with the replica's paths to the
// apiserver and to the hypervisor each through a netfault proxy
// (Process.APIPath, Process.HypervisorPath), so that a test can black-hole
// its network.
func (l *Lab) StartProxiedReplica(ctx context.Context, name string, user *testenv.User, extra ...string) (*Process, error) {
	if user == nil {
		user = l.Env.Admin()
	}
	api, err := netfault.Start(l.Env.Config().Host)
	if err != nil {
		return nil, err
	}
	hv, err := netfault.Start(l.hvAddr)
	if err != nil {
		_ = api.Close()
		return nil, err
	}
	fail := func(err error) (*Process, error) {
		_ = api.Close()
		_ = hv.Close()
		return nil, err
	}
	cfg, err := clientcmd.LoadFromFile(user.KubeconfigPath)
	if err != nil {
		return fail(err)
	}
	for _, c := range cfg.Clusters {
		c.Server = "https://" + api.Addr()
	}
	kubeconfig := filepath.Join(l.Dir, fmt.Sprintf("%s-%d.kubeconfig", name, time.Now().UnixNano()))
	if err := clientcmd.WriteToFile(*cfg, kubeconfig); err != nil {
		return fail(err)
	}
	// Later flags win: these replace StartReplica's.
	extra = append([]string{"--kubeconfig", kubeconfig, "--hypervisor-url", "http://" + hv.Addr()}, extra...)
	p, err := l.StartReplica(ctx, name, user, extra...)
	if err != nil {
		return fail(err)
	}
	p.APIPath, p.HypervisorPath = api, hv
	return p, nil
}

func (l *Lab) spawn(name, bin string, args, env []string) (*Process, error) {
	p := &Process{Name: name, LogPath: filepath.Join(l.Dir, fmt.Sprintf("%s-%d.log", name, time.Now().UnixNano())), exited: make(chan struct{})}
	f, err := os.Create(p.LogPath)
	if err != nil {
		return nil, err
	}
	p.Cmd = exec.Command(bin, args...)
	p.Cmd.Env = append(os.Environ(), env...)
	p.Cmd.Stdout, p.Cmd.Stderr = f, f
	if err := p.Cmd.Start(); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	go func() {
		err := p.Cmd.Wait()
		_ = f.Close()
		var exitErr *exec.ExitError
		switch {
		case err == nil:
		case errors.As(err, &exitErr):
			p.code = exitErr.ExitCode()
		default:
			p.code = -1
		}
		close(p.exited)
	}()
	return p, nil
}

// Signal sends sig to the process.
func (p *Process) Signal(sig syscall.Signal) error { return p.Cmd.Process.Signal(sig) }

// Kill ends the process at once and waits for it.
func (p *Process) Kill() {
	_ = p.Cmd.Process.Signal(syscall.SIGCONT)
	_ = p.Cmd.Process.Kill()
	<-p.exited
	for _, path := range []*netfault.Proxy{p.APIPath, p.HypervisorPath} {
		if path != nil {
			_ = path.Close()
		}
	}
}

// Running reports whether the process has not exited.
func (p *Process) Running() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// Wait waits up to timeout for the process to exit and returns its code.
func (p *Process) Wait(timeout time.Duration) (int, error) {
	select {
	case <-p.exited:
		return p.code, nil
	case <-time.After(timeout):
		return 0, fmt.Errorf("%s still running after %v", p.Name, timeout)
	}
}

// Log returns the process's output so far.
func (p *Process) Log() string {
	data, _ := os.ReadFile(p.LogPath)
	return string(data)
}

// awaitLine waits for a line of the process's output that contains text,
// and returns what follows text on it.
func (p *Process) awaitLine(ctx context.Context, text string, timeout time.Duration) (string, error) {
	deadline := time.Now().Add(timeout)
	for {
		f, err := os.Open(p.LogPath)
		if err == nil {
			sc := bufio.NewScanner(f)
			for sc.Scan() {
				if _, after, ok := strings.Cut(sc.Text(), text); ok {
					_ = f.Close()
					return after, nil
				}
			}
			_ = f.Close()
		}
		if !p.Running() {
			return "", fmt.Errorf("%s exited before saying %q:\n%s", p.Name, text, p.Log())
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return "", fmt.Errorf("%s did not say %q within %v", p.Name, text, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Holder is the identity holding the controller's Lease ("" when none).
func (l *Lab) Holder(ctx context.Context) string {
	lease, err := l.Admin.CoordinationV1().Leases(Namespace).Get(ctx, LeaseName, metav1.GetOptions{})
	if err != nil {
		return ""
	}
	return ptr.Deref(lease.Spec.HolderIdentity, "")
}

// Leader returns the running replica holding the Lease, or nil.
func (l *Lab) Leader(ctx context.Context) *Process {
	holder := l.Holder(ctx)
	name, _, ok := strings.Cut(holder, "_")
	if !ok {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, p := range l.Replicas {
		if p.Name == name && p.Running() {
			return p
		}
	}
	return nil
}

// AwaitLeader waits for a running replica other than not to hold the Lease.
func (l *Lab) AwaitLeader(ctx context.Context, not *Process, timeout time.Duration) (*Process, error) {
	deadline := time.Now().Add(timeout)
	for {
		if p := l.Leader(ctx); p != nil && p != not {
			return p, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("no new leader within %v (holder %q)", timeout, l.Holder(ctx))
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Close stops every process and the control plane, and removes Dir.
func (l *Lab) Close() {
	l.mu.Lock()
	replicas := l.Replicas
	l.mu.Unlock()
	for _, p := range replicas {
		p.Kill()
	}
	if l.Hypervisor != nil {
		l.Hypervisor.Kill()
	}
	l.webhooks.close()
	if l.Env != nil {
		_ = l.Env.Stop()
	}
	_ = os.RemoveAll(l.Dir)
}
