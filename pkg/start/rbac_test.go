package start_test

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
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
