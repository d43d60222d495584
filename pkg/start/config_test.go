package start_test

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/spf13/pflag"
	corev1 "k8s.io/api/core/v1"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/rein-k8s/rein/internal/testkit"
	"github.com/rein-k8s/rein/internal/testlock"
	"github.com/rein-k8s/rein/pkg/framework"
	"github.com/rein-k8s/rein/pkg/generic"
	"github.com/rein-k8s/rein/pkg/start"
)

// onWorkstation makes the test process look like one outside a pod: no
// POD_NAMESPACE, no KUBECONFIG, no in-cluster apiserver.
func onWorkstation(t *testing.T) {
	t.Helper()
	if _, err := os.Stat("/var/run/secrets/kubernetes.io/serviceaccount/namespace"); err == nil {
		t.Skip("this process runs in a pod: its service account's namespace would be the lease namespace")
	}
	t.Setenv("POD_NAMESPACE", "")
	t.Setenv("KUBECONFIG", "")
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
}

// writeKubeconfig writes a copy of the admin's kubeconfig whose one context,
// the current one, is called contextName and has namespace ns.
func writeKubeconfig(t *testing.T, contextName, ns string) string {
	t.Helper()
	cfg, err := clientcmd.LoadFromFile(env.KubeconfigPath())
	if err != nil {
		t.Fatal(err)
	}
	c := cfg.Contexts[cfg.CurrentContext].DeepCopy()
	c.Namespace = ns
	cfg.Contexts = map[string]*clientcmdapi.Context{contextName: c}
	cfg.CurrentContext = contextName
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		t.Fatal(err)
	}
	return path
}

// parseFlags binds o's flags to a new flag set and parses args.
func parseFlags(t *testing.T, o *start.Options, args ...string) {
	t.Helper()
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	o.BindFlags(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
}

// newReplica builds (not runs) a replica of o, serving nothing, with its
// logs in the returned buffer.
func newReplica(t *testing.T, o start.Options) (*start.Replica, *testkit.SyncBuffer, error) {
	t.Helper()
	logs := &testkit.SyncBuffer{}
	logger := logrus.New()
	logger.SetOutput(logs)
	logger.SetFormatter(messageOnly{})
	o.Logger = logrus.NewEntry(logger)
	o.MetricsBindAddress, o.HealthProbeBindAddress = "0", "0"
	r, err := start.New(o, start.Group{LeaseName: testLease, Factories: []start.Starter{newFactory(t, "default")}})
	return r, logs, err
}

// messageOnly formats a log entry as its message, unquoted.
type messageOnly struct{}

func (messageOnly) Format(e *logrus.Entry) ([]byte, error) { return []byte(e.Message + "\n"), nil }

// sameHost reports whether a rest.Config's host is the test apiserver's.
func sameHost(host string) bool {
	return strings.TrimSuffix(host, "/") == strings.TrimSuffix(env.Config().Host, "/")
}

func wantLeaseNamespace(t *testing.T, o start.Options, ns, why string) {
	t.Helper()
	r, logs, err := newReplica(t, o)
	if err != nil {
		t.Fatal(err)
	}
	if got := r.LeaseNamespace(); got != ns {
		t.Errorf("lease namespace %q, want %q", got, ns)
	}
	if want := fmt.Sprintf("lease namespace %q (%s", ns, why); !strings.Contains(logs.String(), want) {
		t.Errorf("the log does not say %q:\n%s", want, logs)
	}
}

func TestLeaseNamespaceFromKubeconfigContext(t *testing.T) {
	onWorkstation(t)
	path := writeKubeconfig(t, "kind-team", "team-a")
	o := start.NewOptions()
	parseFlags(t, &o, "--kubeconfig", path)
	cfg, err := o.LoadConfig()
	if err != nil {
		t.Fatal(err)
	}
	if o.Config != cfg || !sameHost(cfg.Host) {
		t.Fatalf("LoadConfig: Options.Config %p, returned %p for %s, want the test apiserver %s", o.Config, cfg, cfg.Host, env.Config().Host)
	}
	wantLeaseNamespace(t, o, "team-a", fmt.Sprintf(`the namespace of kubeconfig context "kind-team" in %s;`, path))
}

func TestLeaseNamespaceDefault(t *testing.T) {
	onWorkstation(t)
	// Through $KUBECONFIG this time.
	t.Setenv("KUBECONFIG", writeKubeconfig(t, "kind-x", ""))
	o := start.NewOptions()
	parseFlags(t, &o)
	if _, err := o.LoadConfig(); err != nil {
		t.Fatal(err)
	}
	wantLeaseNamespace(t, o, "default", `kubeconfig context "kind-x" has none; set --leader-elect-resource-namespace to change)`)
}

func TestLeaseNamespaceConfigSetDirectly(t *testing.T) {
	onWorkstation(t)
	o := start.NewOptions()
	o.Config = env.Config()
	wantLeaseNamespace(t, o, "default", "Options.Config was not loaded by LoadConfig, so no kubeconfig context names one; set --leader-elect-resource-namespace to change)")
}

func TestLeaseNamespacePodAndFlagWin(t *testing.T) {
	onWorkstation(t)
	path := writeKubeconfig(t, "kind-team", "team-a")
	t.Setenv("POD_NAMESPACE", "pod-ns")

	o := start.NewOptions()
	parseFlags(t, &o, "--kubeconfig", path)
	if _, err := o.LoadConfig(); err != nil {
		t.Fatal(err)
	}
	wantLeaseNamespace(t, o, "pod-ns", "the pod's namespace, from POD_NAMESPACE)")

	o = start.NewOptions()
	parseFlags(t, &o, "--kubeconfig", path, "--leader-elect-resource-namespace", "flag-ns")
	if _, err := o.LoadConfig(); err != nil {
		t.Fatal(err)
	}
	wantLeaseNamespace(t, o, "flag-ns", "set by --leader-elect-resource-namespace")
}

func TestInvalidLeaseNamespaceStillFails(t *testing.T) {
	onWorkstation(t)
	o := start.NewOptions()
	parseFlags(t, &o, "--kubeconfig", writeKubeconfig(t, "kind-team", "team-a"), "--leader-elect-resource-namespace", "Not_A_Namespace")
	const want = `--leader-elect-resource-namespace: lease namespace "Not_A_Namespace" is not valid`
	// LoadConfig checks the settings first; the configuration itself loads.
	_, err := o.LoadConfig()
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("LoadConfig with an invalid lease namespace: %v", err)
	}
	if o.Config == nil {
		t.Fatal("LoadConfig did not keep the configuration it loaded beside the settings error")
	}
	_, _, err = newReplica(t, o)
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("invalid lease namespace: %v", err)
	}
}

func TestLoadConfigErrorsSayWhatToDo(t *testing.T) {
	onWorkstation(t)
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing")

	noContext := filepath.Join(dir, "no-context")
	cfg, err := clientcmd.LoadFromFile(env.KubeconfigPath())
	if err != nil {
		t.Fatal(err)
	}
	cfg.CurrentContext = "gone"
	if err := clientcmd.WriteToFile(*cfg, noContext); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name       string
		kubeconfig string
		env        string
		want       []string
	}{
		{"missing --kubeconfig", missing, "", []string{"kubeconfig " + missing + " (--kubeconfig)", "pass a readable kubeconfig file"}},
		{"missing context", noContext, "", []string{noContext, `context "gone"`, "kubectl config use-context"}},
		{"nothing at all", "", missing, []string{"$KUBECONFIG (" + missing + ") names no existing kubeconfig", "not a pod", "pass --kubeconfig FILE, set KUBECONFIG"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("KUBECONFIG", tc.env)
			o := start.NewOptions()
			parseFlags(t, &o, "--kubeconfig="+tc.kubeconfig)
			cfg, err := o.LoadConfig()
			if err == nil {
				t.Fatalf("LoadConfig succeeded: %s", cfg.Host)
			}
			for _, want := range tc.want {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("the error does not say %q: %v", want, err)
				}
			}
			if o.Config != nil {
				t.Error("a failed LoadConfig set Options.Config")
			}
		})
	}
}

// TestKubeconfigFlagDefinedAlready: a flag set that has --kubeconfig
// already (controller-runtime's flag.CommandLine) keeps it, and LoadConfig
// reads it.
func TestKubeconfigFlagDefinedAlready(t *testing.T) {
	onWorkstation(t)
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	theirs := fs.String("kubeconfig", "", "theirs")
	o := start.NewOptions()
	o.BindFlags(fs)
	if err := fs.Parse([]string{"--kubeconfig", writeKubeconfig(t, "theirs", "their-ns")}); err != nil {
		t.Fatal(err)
	}
	if *theirs == "" {
		t.Fatal("the flag defined first did not get the value")
	}
	cfg, err := o.LoadConfig()
	if err != nil {
		t.Fatal(err)
	}
	if !sameHost(cfg.Host) {
		t.Fatalf("host %s, want %s", cfg.Host, env.Config().Host)
	}
	wantLeaseNamespace(t, o, "their-ns", `the namespace of kubeconfig context "theirs"`)
}

// TestFlagsWithPflag: the flags work through pflag's AddGoFlagSet.
func TestFlagsWithPflag(t *testing.T) {
	onWorkstation(t)
	o := start.NewOptions()
	gofs := flag.NewFlagSet("test", flag.ContinueOnError)
	o.BindFlags(gofs)
	pfs := pflag.NewFlagSet("test", pflag.ContinueOnError)
	pfs.AddGoFlagSet(gofs)
	path := writeKubeconfig(t, "p", "")
	if err := pfs.Parse([]string{"--kubeconfig", path, "--leader-elect-resource-namespace=flag-ns", "--metrics-bind-address=:9090"}); err != nil {
		t.Fatal(err)
	}
	if o.Kubeconfig != path || o.LeaseNamespace != "flag-ns" || o.MetricsBindAddress != ":9090" {
		t.Fatalf("after pflag: kubeconfig %q, lease namespace %q, metrics %q", o.Kubeconfig, o.LeaseNamespace, o.MetricsBindAddress)
	}
	if _, err := o.LoadConfig(); err != nil {
		t.Fatal(err)
	}
}

func TestDefaultAddressesAreLoopback(t *testing.T) {
	o := start.NewOptions()
	if o.MetricsBindAddress != "127.0.0.1:8080" || o.HealthProbeBindAddress != "127.0.0.1:8081" {
		t.Fatalf("NewOptions: metrics on %q, probes on %q, want 127.0.0.1:8080 and 127.0.0.1:8081", o.MetricsBindAddress, o.HealthProbeBindAddress)
	}
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	o.BindFlags(fs)
	for name, want := range map[string]string{"metrics-bind-address": "127.0.0.1:8080", "health-probe-bind-address": "127.0.0.1:8081"} {
		if got := fs.Lookup(name).DefValue; got != want {
			t.Errorf("--%s defaults to %q, want %q", name, got, want)
		}
	}
}

// replicaProcessEnv, set, makes the test binary run replicaMain instead of
// the tests.
const replicaProcessEnv = "REIN_START_TEST_REPLICA"

// replicaMain is a replica program as the README shows it, with every
// default: TestRunDefaults runs it as a separate process, since start.Run
// ends the process. Its logger is logrus's own (text) until
// --log-format says otherwise.
func replicaMain() {
	opts := start.NewOptions()
	group := start.Group{LeaseName: "start-run-test"}
	namespace := flag.String("namespace", "", "namespace whose ConfigMaps are watched")
	opts.BindFlags(flag.CommandLine)
	group.BindFlags(flag.CommandLine)
	flag.Parse()
	log := logrus.New()
	opts.Logger = logrus.NewEntry(log)
	cfg, err := opts.LoadConfig()
	if err != nil {
		log.WithError(err).Error("cannot load the configuration")
		os.Exit(2)
	}
	factory, err := framework.NewFactory(cfg, clientgoscheme.Scheme, framework.Options{Namespace: *namespace})
	if err != nil {
		log.WithError(err).Error("factory")
		os.Exit(2)
	}
	configMaps := generic.NewController[*corev1.ConfigMap, *corev1.ConfigMapList](factory, generic.Resource{
		GVK: corev1.SchemeGroupVersion.WithKind("ConfigMap"), Plural: "configmaps", Namespaced: true,
	})
	ctx := context.Background()
	configMaps.OnChange(ctx, "noop", func(ctx context.Context, key string, cm *corev1.ConfigMap) (*corev1.ConfigMap, error) {
		return nil, nil
	})
	group.Factories = []start.Starter{factory}
	if err := start.Run(ctx, opts, group); err != nil {
		log.WithError(err).Error("cannot start")
		os.Exit(2)
	}
	select {}
}

// logLine finds the first JSON log line whose message starts with prefix.
func logLine(out, prefix string) map[string]any {
	for line := range strings.Lines(out) {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) == nil {
			if msg, _ := m["msg"].(string); strings.HasPrefix(msg, prefix) {
				return m
			}
		}
	}
	return nil
}

// TestRunDefaults runs replicaMain, a program with every default, as a
// workstation would: --kubeconfig only, and --log-format=json for the test
// to read its log. It serves on loopback only, puts its Lease in the
// kubeconfig context's namespace and says so, writes JSON lines only
// (client-go's, through klog, too), and a SIGTERM ends it with ExitOK and
// the lease released.
func TestRunDefaults(t *testing.T) {
	onWorkstation(t)
	// test/readme's replica binds the same ports from another process.
	testlock.Lock(t, testlock.DefaultPorts)
	admin := testkit.Admin(t, env)
	ns := newNamespace(t, admin)
	path := writeKubeconfig(t, "laptop", ns)
	out := &testkit.SyncBuffer{}
	cmd := exec.Command(os.Args[0], "--kubeconfig", path, "--namespace", ns, "--log-format=json")
	cmd.Env = append(os.Environ(), replicaProcessEnv+"=1", "POD_NAME=laptop")
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	var waitErr error
	go func() { waitErr = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		select {
		case <-exited:
		default:
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("the replica's output:\n%s", out)
		}
	})

	var serving map[string]any
	eventually(t, "the replica to serve", func() bool {
		if serving = logLine(out.String(), "serving "); serving != nil {
			return true
		}
		select {
		case <-exited:
			if strings.Contains(out.String(), "address already in use") {
				t.Skipf("127.0.0.1:8080 or 127.0.0.1:8081 is taken on this machine:\n%s", out)
			}
			t.Fatalf("the replica ended (%v) before serving:\n%s", waitErr, out)
		default:
		}
		return false
	})
	if serving["metrics"] != "127.0.0.1:8080" || serving["probes"] != "127.0.0.1:8081" {
		t.Fatalf("metrics on %v, probes on %v, want 127.0.0.1:8080 and 127.0.0.1:8081", serving["metrics"], serving["probes"])
	}
	eventually(t, "/readyz", func() bool {
		resp, err := http.Get("http://127.0.0.1:8081/readyz")
		if err != nil {
			return false
		}
		_ = resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	// Not on any other address of the machine.
	if ip := nonLoopbackIP(); ip != nil {
		if c, err := net.DialTimeout("tcp", net.JoinHostPort(ip.String(), "8081"), 2*time.Second); err == nil {
			_ = c.Close()
			t.Errorf("the probes answer on %s too", ip)
		}
	}

	lease := logLine(out.String(), "lease namespace ")
	if want := fmt.Sprintf(`lease namespace %q (the namespace of kubeconfig context "laptop" in %s; set --leader-elect-resource-namespace to change)`, ns, path); lease == nil || lease["msg"] != want {
		t.Errorf("lease namespace log line %v, want %q", lease, want)
	}
	eventually(t, "leading in "+ns, func() bool { return strings.HasPrefix(holder(t, admin, ns, "start-run-test"), "laptop") })

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-exited:
	case <-time.After(30 * time.Second):
		t.Fatal("the replica did not end after SIGTERM")
	}
	if waitErr != nil {
		t.Fatalf("the replica ended with %v, want exit code %d", waitErr, start.ExitOK)
	}
	if h := holder(t, admin, ns, "start-run-test"); h != "" {
		t.Fatalf("lease not released: holder %q", h)
	}
	for line := range strings.Lines(out.String()) {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Errorf("--log-format=json: not a JSON line: %q", line)
		}
	}
}

// nonLoopbackIP is an address of this machine other than loopback, or nil.
func nonLoopbackIP() net.IP {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && !n.IP.IsLoopback() && n.IP.To4() != nil {
			return n.IP
		}
	}
	return nil
}

// TestFlagMistakesAllInOneRun: a user who got several flags wrong learns of
// every one from one LoadConfig, with the configuration problem too, instead
// of one per run (flag.Parse stops at its first error).
func TestFlagMistakesAllInOneRun(t *testing.T) {
	onWorkstation(t)
	missing := filepath.Join(t.TempDir(), "missing")
	o := start.NewOptions()
	parseFlags(t, &o,
		"--leader-elect-lease-duration=15", // no unit
		"--drain-grace=-1s",
		"--leader-elect-renew-deadline=20s", // above the (default) lease duration
		"--leader-elect=maybe",
		"--metrics-bind-address=localhost",
		"--health-probe-bind-address=:70000",
		"--kubeconfig="+missing,
		"--log-format=yaml",
	)
	_, err := o.LoadConfig()
	if err == nil {
		t.Fatal("LoadConfig succeeded")
	}
	for _, want := range []string{
		`--leader-elect-lease-duration="15": not a duration`,
		"--drain-grace is -1s",
		"--leader-elect-lease-duration (15s) must be greater than --leader-elect-renew-deadline (20s)",
		`--leader-elect="maybe": not a boolean`,
		`--metrics-bind-address="localhost"`,
		`--health-probe-bind-address=":70000": port "70000"`,
		"kubeconfig " + missing + " (--kubeconfig)",
		`--log-format="yaml": want text or json`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the error does not say %q:\n%v", want, err)
		}
	}

	// A group's flags: its mistakes, all of them, are New's to report,
	// with the options' own.
	var g start.Group
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	g.BindFlags(fs)
	if err := fs.Parse([]string{"--leader-elect-resource-name=Not_A_Name", "--shards=many"}); err != nil {
		t.Fatal(err)
	}
	g.Factories = []start.Starter{newFactory(t, "default")}
	o = testOptions(t, "default")
	_, err = start.New(o, g)
	for _, want := range []string{`lease name "Not_A_Name" is not valid`, `--shards="many"`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("New does not say %q:\n%v", want, err)
		}
	}

	// Good values still parse, bool flags without a value included.
	o = start.NewOptions()
	parseFlags(t, &o, "--return-to-standby", "--leader-elect=false", "--drain-grace=3s", "--metrics-bind-address=0")
	if !o.ReturnToStandby || o.LeaderElect || o.DrainGrace != 3*time.Second || o.MetricsBindAddress != "0" {
		t.Fatalf("parsed: return-to-standby %v, leader-elect %v, drain-grace %v, metrics %q", o.ReturnToStandby, o.LeaderElect, o.DrainGrace, o.MetricsBindAddress)
	}
}
