package codegen_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admissionregistration/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apiextensions "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/rein-k8s/rein/internal/testkit"
	"github.com/rein-k8s/rein/internal/testkit/audit"
	"github.com/rein-k8s/rein/internal/testkit/rbactest"
	"github.com/rein-k8s/rein/pkg/testenv"
)

// The scaffolded project's names (TestScaffoldAProject's): its service
// account, Lease and webhook configurations are all "guestbook", in
// guestbook-system.
const (
	projectName      = "guestbook"
	projectNamespace = "guestbook-system"
)

// replica is one process of the scaffolded operator's binary.
type replica struct {
	name string
	cmd  *exec.Cmd
	log  *testkit.SyncBuffer
	done chan struct{}
}

func (r *replica) running() bool {
	select {
	case <-r.done:
		return false
	default:
		return true
	}
}

// stop sends sig and waits up to 30s for the process to end (then kills it).
func (r *replica) stop(t *testing.T, sig syscall.Signal) {
	t.Helper()
	_ = r.cmd.Process.Signal(sig)
	select {
	case <-r.done:
	case <-time.After(30 * time.Second):
		_ = r.cmd.Process.Kill()
		<-r.done
		t.Errorf("%s did not end within 30s of %v:\n%s", r.name, sig, r.log)
	}
}

// readyzURL waits for the replica to say where it serves /readyz.
func (r *replica) readyzURL(t *testing.T) string {
	t.Helper()
	re := regexp.MustCompile(`/readyz on (http://[0-9.:]+)`)
	var url string
	testkit.Eventually(t, time.Minute, 50*time.Millisecond, r.name+" says where it serves /readyz", func() bool {
		if m := re.FindStringSubmatch(r.log.String()); m != nil {
			url = m[1] + "/readyz"
			return true
		}
		if !r.running() {
			t.Fatalf("%s exited:\n%s", r.name, r.log)
		}
		return false
	})
	return url
}

// runOnTheGeneratedRBAC runs the scaffolded operator in dir as it is
// deployed, on env (which holds deploy/ and its fencing component,
// applied): three replicas of bin/guestbook with the Deployment's
// arguments, as the service account deploy/rbac.yaml binds, serving the
// webhooks; the leader is stopped by SIGTERM and a standby takes over.
// The audit log must show no request of the service account forbidden.
// Then, for each rule of deploy/rbac.yaml in turn, a replica bound to all
// the others must name exactly that rule in /readyz and write no Lease.
func runOnTheGeneratedRBAC(t *testing.T, env *testenv.Env, dir string, deployArgs []string) {
	ctx := t.Context()
	admin, err := kubernetes.NewForConfig(env.Config())
	if err != nil {
		t.Fatal(err)
	}
	build := exec.CommandContext(ctx, "make", "build")
	build.Dir = dir
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("make build: %v\n%s", err, out)
	}
	bin := filepath.Join(dir, "bin", projectName)

	// The apiserver calls the webhooks of the replica that runs to the end
	// by URL: there is no Service network here. The certificate the
	// replicas keep in their Secret is for that host (--webhook-host).
	ports := freePorts(t, 3)
	hooksAt := fmt.Sprintf("https://127.0.0.1:%d", ports[2])
	pointWebhooksAt(t, ctx, env, admin, hooksAt)

	// The service account's token, as a pod has it.
	token, err := admin.CoreV1().ServiceAccounts(projectNamespace).CreateToken(ctx, projectName, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptrTo(int64(3600))},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	saKubeconfig := writeKubeconfig(t, env, "serviceaccount", token.Status.Token)

	start := func(t *testing.T, name, kubeconfig string, webhookPort int) *replica {
		t.Helper()
		args := append(append([]string(nil), deployArgs...),
			"--kubeconfig="+kubeconfig,
			"--metrics-bind-address=0", "--health-probe-bind-address=127.0.0.1:0",
			"--webhook-bind-address=127.0.0.1:"+strconv.Itoa(webhookPort), "--webhook-host=127.0.0.1")
		r := &replica{name: name, log: &testkit.SyncBuffer{}, done: make(chan struct{})}
		r.cmd = exec.Command(bin, args...)
		r.cmd.Env = append(os.Environ(), "POD_NAME="+name, "POD_NAMESPACE="+projectNamespace)
		r.cmd.Stdout, r.cmd.Stderr = r.log, r.log
		if err := r.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		go func() { _ = r.cmd.Wait(); close(r.done) }()
		t.Cleanup(func() {
			if r.running() {
				_ = r.cmd.Process.Kill()
				<-r.done
			}
			if t.Failed() {
				t.Logf("%s:\n%s", r.name, r.log)
			}
		})
		return r
	}
	auditFrom, err := audit.Read(env, 0, func(*audit.Event) {})
	if err != nil {
		t.Fatal(err)
	}
	// Two replicas first, so that the third, whose webhooks the apiserver
	// calls, is a standby and runs to the end.
	replicas := map[string]*replica{}
	for i := range 2 {
		name := fmt.Sprintf("%s-%d", projectName, i)
		replicas[name] = start(t, name, saKubeconfig, ports[i])
	}
	leader := awaitHolder(t, ctx, admin, "", replicas)
	hooks := start(t, projectName+"-2", saKubeconfig, ports[2])
	replicas[hooks.name] = hooks
	hooksReady := hooks.readyzURL(t)
	testkit.Eventually(t, time.Minute, 100*time.Millisecond, hooks.name+" ready", func() bool {
		resp, err := http.Get(hooksReady)
		if err != nil {
			return false
		}
		_ = resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	// The leader writes the CA into the webhook configurations: then the
	// apiserver can call them, and creates pass the webhooks.
	testkit.Eventually(t, time.Minute, 100*time.Millisecond, "the CA bundle injected into the webhook configurations", func() bool {
		v, err := admin.AdmissionregistrationV1().ValidatingWebhookConfigurations().Get(ctx, projectName, metav1.GetOptions{})
		return err == nil && len(v.Webhooks) > 0 && len(v.Webhooks[0].ClientConfig.CABundle) > 0
	})
	dyn := dynamic.NewForConfigOrDie(env.Config())
	guestbooks := dyn.Resource(schema.GroupVersionResource{Group: "webapp.example.com", Version: "v1", Resource: "guestbooks"}).Namespace("default")
	gizmoes := dyn.Resource(schema.GroupVersionResource{Group: "webapp.example.com", Version: "v1", Resource: "gizmoes"})
	create := func(name string) {
		t.Helper()
		for _, c := range []struct {
			ri   dynamic.ResourceInterface
			kind string
		}{{guestbooks, "Guestbook"}, {gizmoes, "Gizmo"}} {
			if _, err := c.ri.Create(ctx, &unstructured.Unstructured{Object: map[string]any{
				"apiVersion": "webapp.example.com/v1", "kind": c.kind, "metadata": map[string]any{"name": name}, "spec": map[string]any{"foo": "bar"},
			}}, metav1.CreateOptions{}); err != nil {
				t.Fatalf("create %s %s: %v", c.kind, name, err)
			}
		}
	}
	awaitReady := func(names ...string) {
		t.Helper()
		for _, ri := range []dynamic.ResourceInterface{guestbooks, gizmoes} {
			for _, name := range names {
				testkit.Eventually(t, 2*time.Minute, 100*time.Millisecond, name+" Ready", func() bool {
					u, err := ri.Get(ctx, name, metav1.GetOptions{})
					if err != nil {
						return false
					}
					conditions, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
					for _, c := range conditions {
						if m, ok := c.(map[string]any); ok && m["type"] == "Ready" && m["status"] == "True" {
							return true
						}
					}
					return false
				})
			}
		}
	}
	create("before-handoff")
	awaitReady("before-handoff")

	// A graceful handoff: the leader drains and releases; a standby takes
	// over and handles a change made after it.
	replicas[leader].stop(t, syscall.SIGTERM)
	delete(replicas, leader)
	successor := awaitHolder(t, ctx, admin, leader, replicas)
	create("after-handoff")
	awaitReady("before-handoff", "after-handoff")
	for _, r := range replicas {
		if !strings.Contains(r.log.String(), "RBAC: every permission this replica needs is granted") {
			t.Errorf("%s did not report its permissions complete:\n%s", r.name, r.log)
		}
		r.stop(t, syscall.SIGTERM)
	}
	sa := "system:serviceaccount:" + projectNamespace + ":" + projectName
	requests, forbidden, err := rbactest.Requests(env, auditFrom, sa)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range forbidden {
		t.Errorf("forbidden: %s", f)
	}
	t.Logf("3 replicas as %s, handoff %s → %s: %d requests, %d forbidden", sa, leader, successor, requests, len(forbidden))
	if requests == 0 {
		t.Fatal("the audit log has no request of the service account")
	}

	// Every rule of deploy/rbac.yaml removed in turn: the start-up check
	// names exactly it, and the replica does not campaign.
	printed, err := os.ReadFile(filepath.Join(dir, "deploy", "rbac.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	roles, err := rbactest.Parse(printed)
	if err != nil {
		t.Fatal(err)
	}
	// In parallel, in a group that returns once all are done (before the
	// control plane stops).
	t.Run("each rule removed", func(t *testing.T) {
		for n, at := range rbactest.EachRule(roles) {
			rest, removed := rbactest.Without(roles, at)
			rule := removed.Rules[0]
			name := fmt.Sprintf("drop-%d", n)
			t.Run(fmt.Sprintf("without %s %v %v %v %v", removed.Kind, rule.APIGroups, rule.Resources, rule.ResourceNames, rule.Verbs), func(t *testing.T) {
				t.Parallel() // each its own user; none campaigns
				if err := rbactest.Bind(ctx, admin, name, rbactest.User(name), rest); err != nil {
					t.Fatal(err)
				}
				user, err := env.AddUser(name)
				if err != nil {
					t.Fatal(err)
				}
				offset, err := audit.Read(env, 0, func(*audit.Event) {})
				if err != nil {
					t.Fatal(err)
				}
				r := start(t, name, user.KubeconfigPath, freePorts(t, 1)[0])
				defer r.stop(t, syscall.SIGTERM)
				wait, cancel := context.WithTimeout(ctx, time.Minute)
				defer cancel()
				missing, err := rbactest.MissingFromReadyz(wait, r.readyzURL(t))
				if err != nil {
					t.Fatalf("%v\n%s", err, r.log)
				}
				if got, want := rbactest.AllGrants(missing), rbactest.AllGrants([]rbactest.Role{removed}); fmt.Sprint(got) != fmt.Sprint(want) {
					t.Errorf("reported missing\n%v\nwant (the rule removed)\n%v", got, want)
				}
				// /readyz reports after the check, which runs before the
				// replica campaigns: by now it would have written its Lease.
				writes, err := rbactest.LeaseWrites(env, offset, name)
				if err != nil {
					t.Fatal(err)
				}
				for _, w := range writes {
					t.Errorf("%s %s: a replica missing a permission campaigned", name, w)
				}
			})
		}
	})
}

// awaitHolder waits until the Lease is held by one of replicas other than
// not, and returns that replica's name.
func awaitHolder(t *testing.T, ctx context.Context, admin kubernetes.Interface, not string, replicas map[string]*replica) string {
	t.Helper()
	var holder string
	testkit.Eventually(t, 2*time.Minute, 100*time.Millisecond, "a leader other than "+strconv.Quote(not), func() bool {
		lease, err := admin.CoordinationV1().Leases(projectNamespace).Get(ctx, projectName, metav1.GetOptions{})
		if err != nil || lease.Spec.HolderIdentity == nil {
			return false
		}
		for name := range replicas {
			if name != not && (*lease.Spec.HolderIdentity == name || strings.HasPrefix(*lease.Spec.HolderIdentity, name+"_")) {
				holder = name
				return true
			}
		}
		return false
	})
	return holder
}

// pointWebhooksAt has the apiserver call the project's admission and
// conversion webhooks at base, keeping each one's path.
func pointWebhooksAt(t *testing.T, ctx context.Context, env *testenv.Env, admin kubernetes.Interface, base string) {
	t.Helper()
	webhooks := admin.AdmissionregistrationV1()
	v, err := webhooks.ValidatingWebhookConfigurations().Get(ctx, projectName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	m, err := webhooks.MutatingWebhookConfigurations().Get(ctx, projectName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var configs []*admissionv1.WebhookClientConfig
	for i := range v.Webhooks {
		configs = append(configs, &v.Webhooks[i].ClientConfig)
	}
	for i := range m.Webhooks {
		configs = append(configs, &m.Webhooks[i].ClientConfig)
	}
	for _, c := range configs {
		path := ""
		if c.Service != nil && c.Service.Path != nil {
			path = *c.Service.Path
		}
		c.URL, c.Service = ptrTo(base+path), nil
	}
	if _, err := webhooks.ValidatingWebhookConfigurations().Update(ctx, v, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := webhooks.MutatingWebhookConfigurations().Update(ctx, m, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	crds, err := apiextensions.NewForConfig(env.Config())
	if err != nil {
		t.Fatal(err)
	}
	crd, err := crds.ApiextensionsV1().CustomResourceDefinitions().Get(ctx, "guestbooks.webapp.example.com", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if conv := crd.Spec.Conversion; conv != nil && conv.Webhook != nil && conv.Webhook.ClientConfig != nil {
		c := conv.Webhook.ClientConfig
		path := ""
		if c.Service != nil && c.Service.Path != nil {
			path = *c.Service.Path
		}
		conv.Webhook.ClientConfig = &apiextensionsv1.WebhookClientConfig{URL: ptrTo(base + path), CABundle: c.CABundle}
		if _, err := crds.ApiextensionsV1().CustomResourceDefinitions().Update(ctx, crd, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
}

// writeKubeconfig writes a kubeconfig for env's apiserver with a bearer
// token, as a pod's service account reaches it.
func writeKubeconfig(t *testing.T, env *testenv.Env, name, token string) string {
	t.Helper()
	cfg := env.Config()
	kc := clientcmdapi.NewConfig()
	kc.Clusters["testenv"] = &clientcmdapi.Cluster{Server: cfg.Host, CertificateAuthorityData: cfg.CAData}
	kc.AuthInfos[name] = &clientcmdapi.AuthInfo{Token: token}
	kc.Contexts[name] = &clientcmdapi.Context{Cluster: "testenv", AuthInfo: name}
	kc.CurrentContext = name
	path := filepath.Join(t.TempDir(), name+".kubeconfig")
	if err := clientcmd.WriteToFile(*kc, path); err != nil {
		t.Fatal(err)
	}
	return path
}

// freePorts returns n ports free on 127.0.0.1 now.
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	var ports []int
	var ls []net.Listener
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	for _, l := range ls {
		_ = l.Close()
	}
	return ports
}

func ptrTo[T any](v T) *T { return &v }
