package start_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/yaml"

	"github.com/rein-k8s/rein/internal/testkit"
	"github.com/rein-k8s/rein/internal/testkit/factorytest"
	"github.com/rein-k8s/rein/pkg/framework"
	"github.com/rein-k8s/rein/pkg/generic"
	"github.com/rein-k8s/rein/pkg/start"
)

// TestPrintRBAC runs replicaMain with --print-rbac where no cluster and no
// kubeconfig exist: it prints, exits 0, prints the same every run, and
// the output parses strictly as RBAC objects granting the ConfigMap
// controller's cache and writes and the Lease, bound to the ServiceAccount
// named by --rbac-service-account.
func TestPrintRBAC(t *testing.T) {
	onWorkstation(t)
	print := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(os.Args[0], append([]string{"--print-rbac", "--namespace", "team-a"}, args...)...)
		// No kubeconfig anywhere, no pod.
		cmd.Env = append(os.Environ(), replicaProcessEnv+"=1", "HOME="+t.TempDir(), "KUBECONFIG=", "POD_NAMESPACE=", "KUBERNETES_SERVICE_HOST=")
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("--print-rbac: %v\n%s", err, stderr.String())
		}
		return stdout.String()
	}
	first := print("--leader-elect-resource-namespace", "ops", "--rbac-service-account", "ops/my-controller")
	for range 3 {
		if again := print("--leader-elect-resource-namespace", "ops", "--rbac-service-account", "ops/my-controller"); again != first {
			t.Fatalf("--print-rbac printed differently:\n%s\n---- then ----\n%s", first, again)
		}
	}
	type key struct{ kind, ns, rule string }
	got := map[key]bool{}
	subjects := 0
	for _, doc := range documents(t, first) {
		var head struct{ Kind string }
		if err := yaml.Unmarshal(doc, &head); err != nil {
			t.Fatal(err)
		}
		var rules []rbacv1.PolicyRule
		var meta struct {
			Name, Namespace string
		}
		var err error
		switch head.Kind {
		case "ClusterRole":
			var o rbacv1.ClusterRole
			err = yaml.UnmarshalStrict(doc, &o)
			rules, meta.Name = o.Rules, o.Name
		case "Role":
			var o rbacv1.Role
			err = yaml.UnmarshalStrict(doc, &o)
			rules, meta.Name, meta.Namespace = o.Rules, o.Name, o.Namespace
		case "ClusterRoleBinding":
			var o rbacv1.ClusterRoleBinding
			err = yaml.UnmarshalStrict(doc, &o)
			meta.Name = o.RoleRef.Name
			for _, s := range o.Subjects {
				if s.Kind == "ServiceAccount" && s.Namespace == "ops" && s.Name == "my-controller" {
					subjects++
				}
			}
		case "RoleBinding":
			var o rbacv1.RoleBinding
			err = yaml.UnmarshalStrict(doc, &o)
			meta.Name = o.RoleRef.Name
			for _, s := range o.Subjects {
				if s.Kind == "ServiceAccount" && s.Namespace == "ops" && s.Name == "my-controller" {
					subjects++
				}
			}
		default:
			t.Fatalf("unexpected %s:\n%s", head.Kind, doc)
		}
		if err != nil {
			t.Fatalf("%s: %v\n%s", head.Kind, err, doc)
		}
		if meta.Name != "my-controller" {
			t.Errorf("%s named %q, want the service account's name", head.Kind, meta.Name)
		}
		for _, r := range rules {
			got[key{head.Kind, meta.Namespace, strings.Join(r.APIGroups, ",") + " " + strings.Join(r.Resources, ",") + " " + strings.Join(r.ResourceNames, ",") + " " + strings.Join(r.Verbs, ",")}] = true
		}
	}
	want := map[key]bool{
		// The ConfigMap controller of namespace team-a: its cache, the
		// live read before a finalizer write, its handlers' writes.
		{"Role", "team-a", " configmaps  get,list,watch,update,patch"}: true,
		// Leader election on Lease start-run-test in ops.
		{"Role", "ops", "coordination.k8s.io leases  create"}:                              true,
		{"Role", "ops", "coordination.k8s.io leases start-run-test get,list,watch,update"}: true,
	}
	for k := range want {
		if !got[k] {
			t.Errorf("missing %+v", k)
		}
	}
	for k := range got {
		if !want[k] {
			t.Errorf("unexpected %+v", k)
		}
	}
	if subjects != 2 {
		t.Errorf("%d bindings bind ServiceAccount ops/my-controller, want 2 (one per Role)", subjects)
	}

	// Without a lease namespace (outside a pod), the Roles leave their
	// namespace to kubectl apply -n or kustomize.
	unresolved := print()
	if !strings.Contains(unresolved, "kind: Role\nmetadata:\n  name: start-run-test\nrules:") {
		t.Errorf("the Lease's Role names a namespace:\n%s", unresolved)
	}
}

func documents(t *testing.T, out string) [][]byte {
	t.Helper()
	var docs [][]byte
	r := utilyaml.NewYAMLReader(bufio.NewReader(strings.NewReader(out)))
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return docs
		}
		if err != nil {
			t.Fatal(err)
		}
		if len(bytes.TrimSpace(doc)) > 0 {
			docs = append(docs, doc)
		}
	}
}

// TestMissingRBACHoldsTheCampaignUntilGranted: a replica whose user lacks
// the Lease's rules names them all in /readyz (503) and the log, and
// takes no Lease; granting them, with no restart, makes it ready and
// leading within a few retry periods.
func TestMissingRBACHoldsTheCampaignUntilGranted(t *testing.T) {
	admin := testkit.Admin(t, env)
	ns := newNamespace(t, admin)
	name := "rbac-fix-" + ns
	user, err := env.AddUser(name)
	if err != nil {
		t.Fatal(err)
	}
	bind := func(role string, rules ...rbacv1.PolicyRule) {
		t.Helper()
		ctx := t.Context()
		meta := metav1.ObjectMeta{Name: role, Namespace: ns}
		if _, err := admin.RbacV1().Roles(ns).Create(ctx, &rbacv1.Role{ObjectMeta: meta, Rules: rules}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		if _, err := admin.RbacV1().RoleBindings(ns).Create(ctx, &rbacv1.RoleBinding{ObjectMeta: meta,
			RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: role},
			Subjects: []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: name}}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	// The ConfigMap controller's needs, not the Lease's.
	bind("work", rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"configmaps"}, Verbs: []string{"get", "list", "watch", "update", "patch"}})

	f, err := framework.NewFactory(user.Config(), factorytest.Scheme(t, clientgoscheme.AddToScheme), framework.Options{Namespace: ns})
	if err != nil {
		t.Fatal(err)
	}
	handled := make(chan string, 16)
	generic.NewController[*corev1.ConfigMap, *corev1.ConfigMapList](f, generic.Resource{
		GVK: corev1.SchemeGroupVersion.WithKind("ConfigMap"), Plural: "configmaps", Namespaced: true,
	}).OnChange(t.Context(), "note", func(_ context.Context, key string, cm *corev1.ConfigMap) (*corev1.ConfigMap, error) {
		select {
		case handled <- key:
		default:
		}
		return nil, nil
	})
	o := testOptions(t, ns)
	o.Config = user.Config()
	r, stop, done := runNew(t, o, start.Group{LeaseName: testLease, Factories: []start.Starter{f}})
	defer func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()

	var body string
	eventually(t, "/readyz names the missing rules", func() bool {
		var code int
		code, body = get(t, "http://"+r.ProbeAddr()+"/readyz")
		return code == http.StatusServiceUnavailable && strings.Contains(body, "RBAC: this replica lacks ")
	})
	for _, want := range []string{
		"create leases.coordination.k8s.io in namespace " + ns,
		"update leases.coordination.k8s.io " + ns + "/" + testLease,
		"- apiGroups: [\"coordination.k8s.io\"]\n  resources: [\"leases\"]\n  resourceNames: [\"" + testLease + "\"]\n  verbs: [\"get\", \"list\", \"watch\", \"update\"]",
	} {
		// The check's lines are indented under its "[-]rbac failed" line.
		if !strings.Contains(strings.ReplaceAll(body, "\n    ", "\n"), want) {
			t.Errorf("/readyz does not say %q:\n%s", want, body)
		}
	}
	if strings.Contains(body, "configmaps") {
		t.Errorf("/readyz names a granted rule:\n%s", body)
	}
	time.Sleep(3 * o.RetryPeriod)
	if h := holder(t, admin, ns, testLease); h != "" {
		t.Fatalf("the lease is held by %q: a replica missing rules campaigned", h)
	}

	// The fix, without a restart.
	bind("lease",
		rbacv1.PolicyRule{APIGroups: []string{"coordination.k8s.io"}, Resources: []string{"leases"}, Verbs: []string{"create"}},
		rbacv1.PolicyRule{APIGroups: []string{"coordination.k8s.io"}, Resources: []string{"leases"}, ResourceNames: []string{testLease}, Verbs: []string{"get", "list", "watch", "update"}})
	eventually(t, "leading once granted", func() bool { return strings.HasPrefix(holder(t, admin, ns, testLease), "tester") })
	eventually(t, "/readyz 200 once granted", func() bool { code, _ := get(t, "http://"+r.ProbeAddr()+"/readyz"); return code == http.StatusOK })
	if _, err := admin.CoreV1().ConfigMaps(ns).Create(t.Context(), &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "c"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-handled:
	case <-time.After(20 * time.Second):
		t.Fatal("the handler never ran")
	}
}
