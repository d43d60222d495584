package vmcontroller_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"github.com/rein-k8s/rein/internal/testkit/audit"
	"github.com/rein-k8s/rein/samples/vmcontroller/internal/lab"
)

// printedRole is one role of vmcontroller --print-rbac.
type printedRole struct {
	kind, namespace string
	rules           []rbacv1.PolicyRule
}

// grant is one verb on one resource (and name) in a role: a PolicyRule
// expanded.
type grant struct{ kind, namespace, group, resource, name, verb string }

func (r printedRole) grants(rule rbacv1.PolicyRule) []grant {
	names := rule.ResourceNames
	if len(names) == 0 {
		names = []string{""}
	}
	var out []grant
	for _, g := range rule.APIGroups {
		for _, res := range rule.Resources {
			for _, n := range names {
				for _, v := range rule.Verbs {
					out = append(out, grant{r.kind, r.namespace, g, res, n, v})
				}
			}
		}
	}
	return out
}

// parseRoles reads the ClusterRoles and Roles of YAML documents strictly
// as RBAC objects (bindings are checked for form and skipped).
func parseRoles(t *testing.T, out []byte) []printedRole {
	t.Helper()
	var roles []printedRole
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(out)))
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return roles
		}
		if err != nil {
			t.Fatal(err)
		}
		if len(bytes.TrimSpace(doc)) == 0 {
			continue
		}
		var head struct{ Kind string }
		if err := yaml.Unmarshal(doc, &head); err != nil {
			t.Fatalf("%v\n%s", err, doc)
		}
		switch head.Kind {
		case "ClusterRole":
			var o rbacv1.ClusterRole
			if err := yaml.UnmarshalStrict(doc, &o); err != nil {
				t.Fatalf("%v\n%s", err, doc)
			}
			roles = append(roles, printedRole{"ClusterRole", "", o.Rules})
		case "Role":
			var o rbacv1.Role
			if err := yaml.UnmarshalStrict(doc, &o); err != nil {
				t.Fatalf("%v\n%s", err, doc)
			}
			roles = append(roles, printedRole{"Role", o.Namespace, o.Rules})
		case "ClusterRoleBinding":
			if err := yaml.UnmarshalStrict(doc, &rbacv1.ClusterRoleBinding{}); err != nil {
				t.Fatalf("%v\n%s", err, doc)
			}
		case "RoleBinding":
			if err := yaml.UnmarshalStrict(doc, &rbacv1.RoleBinding{}); err != nil {
				t.Fatalf("%v\n%s", err, doc)
			}
		default:
			t.Fatalf("unexpected %s:\n%s", head.Kind, doc)
		}
	}
}

// bindRoles makes roles, named name, and binds them to the user name.
func bindRoles(t *testing.T, l *lab.Lab, name string, roles []printedRole) {
	t.Helper()
	ctx := t.Context()
	rbac := l.Admin.RbacV1()
	subjects := []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: name}}
	for _, r := range roles {
		meta := metav1.ObjectMeta{Name: name, Namespace: r.namespace}
		ref := rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: r.kind, Name: name}
		var err error
		if r.kind == "ClusterRole" {
			if _, err = rbac.ClusterRoles().Create(ctx, &rbacv1.ClusterRole{ObjectMeta: meta, Rules: r.rules}, metav1.CreateOptions{}); err == nil {
				_, err = rbac.ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{ObjectMeta: meta, RoleRef: ref, Subjects: subjects}, metav1.CreateOptions{})
			}
		} else {
			if _, err = rbac.Roles(r.namespace).Create(ctx, &rbacv1.Role{ObjectMeta: meta, Rules: r.rules}, metav1.CreateOptions{}); err == nil {
				_, err = rbac.RoleBindings(r.namespace).Create(ctx, &rbacv1.RoleBinding{ObjectMeta: meta, RoleRef: ref, Subjects: subjects}, metav1.CreateOptions{})
			}
		}
		if err != nil {
			t.Fatalf("%s for %s: %v", r.kind, name, err)
		}
	}
}

// readyzAddr waits for p to say where it serves /readyz.
func readyzAddr(t *testing.T, p *lab.Process) string {
	t.Helper()
	re := regexp.MustCompile(`/readyz on http://([0-9.:]+)`)
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		if m := re.FindStringSubmatch(p.Log()); m != nil {
			return m[1]
		}
		if !p.Running() {
			t.Fatalf("%s exited:\n%s", p.Name, p.Log())
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s never said where it serves /readyz:\n%s", p.Name, p.Log())
	return ""
}

// missingReported waits until p's /readyz reports missing permissions
// and returns the roles of the YAML it says to add.
func missingReported(t *testing.T, p *lab.Process) []printedRole {
	t.Helper()
	url := "http://" + readyzAddr(t, p) + "/readyz"
	const marker = "# add these rules"
	deadline := time.Now().Add(time.Minute)
	last := ""
	for time.Now().Before(deadline) {
		resp, err := http.Get(url)
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			_ = resp.Body.Close()
			last = string(body)
			if i := strings.Index(last, marker); i >= 0 && resp.StatusCode == http.StatusServiceUnavailable {
				// The YAML is indented under the "[-]rbac failed" line,
				// and the last line of the answer sums the checks up.
				yaml, _, _ := strings.Cut(last[i:], "\nreadyz check failed")
				return parseRoles(t, []byte(strings.ReplaceAll(yaml, "\n    ", "\n")))
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s's /readyz never reported missing permissions; last:\n%s\nlog:\n%s", p.Name, last, p.Log())
	return nil
}

// TestRBACFromTheCode runs the sample as a user bound to exactly what
// vmcontroller --print-rbac prints for its flags: it starts, leads,
// reconciles 200 VirtualMachines and deletes some, and the apiserver
// forbids none of its requests (the audit log). Then, for every printed
// rule in turn (all of them: one replica start each), a user bound to all
// the others gets a replica whose start-up check names exactly that rule,
// in /readyz, and which writes no Lease: it does not campaign.
func TestRBACFromTheCode(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the sample")
	}
	ctx := context.Background()
	f := newFixture(t)
	l := f.lab
	printed, err := l.PrintRBAC(ctx)
	if err != nil {
		t.Fatal(err)
	}
	again, err := l.PrintRBAC(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(printed, again) {
		t.Fatalf("--print-rbac printed differently:\n%s\n---- then ----\n%s", printed, again)
	}
	roles := parseRoles(t, printed)

	// Exactly the printed rules.
	const exact = "rbac-exact"
	bindRoles(t, l, exact, roles)
	user, err := l.Env.AddUser(exact)
	if err != nil {
		t.Fatal(err)
	}
	replica, err := l.StartReplica(ctx, "exact", user)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.AwaitLeader(ctx, nil, time.Minute); err != nil {
		t.Fatalf("%v\n%s", err, replica.Log())
	}
	f.createVMs(ctx)
	f.awaitConverged(2 * time.Minute)
	// Deleting runs the OnRemove handlers: the hypervisor's VM and the
	// children go, then the finalizers.
	for i := range 20 {
		if err := f.vms.VmV1alpha1().VirtualMachines(f.ns).Delete(ctx, vmName(i), metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 2*time.Minute, "20 VirtualMachines deleted", func() bool {
		list, err := f.vms.VmV1alpha1().VirtualMachines(f.ns).List(ctx, metav1.ListOptions{})
		return err == nil && len(list.Items) == vmCount-20
	})
	if !strings.Contains(replica.Log(), "RBAC: every permission this replica needs is granted") {
		t.Errorf("the replica did not report its permissions complete:\n%s", replica.Log())
	}
	replica.Kill()
	requests, forbidden := 0, 0
	if _, err := audit.Read(l.Env, 0, func(ev *audit.Event) {
		if ev.User.Username != exact {
			return
		}
		requests++
		if ev.ResponseStatus.Code == http.StatusForbidden {
			forbidden++
			t.Errorf("forbidden: %s %s %s/%s", ev.Verb, ev.ObjectRef.Resource, ev.ObjectRef.Namespace, ev.ObjectRef.Name)
		}
	}); err != nil {
		t.Fatal(err)
	}
	t.Logf("bound to exactly the printed rules: %d requests, %d forbidden", requests, forbidden)
	if requests == 0 {
		t.Fatal("the audit log has no request of the replica's user")
	}

	// Every rule removed in turn.
	type dropped struct {
		role, rule int
	}
	var drops []dropped
	for i, r := range roles {
		for j := range r.rules {
			drops = append(drops, dropped{i, j})
		}
	}
	for n, d := range drops {
		name := fmt.Sprintf("rbac-drop-%d", n)
		var rest []printedRole
		for i, r := range roles {
			kept := r
			if i == d.role {
				kept.rules = slices.Delete(slices.Clone(r.rules), d.rule, d.rule+1)
			}
			rest = append(rest, kept)
		}
		removed := roles[d.role]
		want := removed.grants(removed.rules[d.rule])
		t.Run(fmt.Sprintf("without %s %v %v %v", removed.kind, removed.rules[d.rule].Resources, removed.rules[d.rule].ResourceNames, removed.rules[d.rule].Verbs), func(t *testing.T) {
			bindRoles(t, l, name, rest)
			user, err := l.Env.AddUser(name)
			if err != nil {
				t.Fatal(err)
			}
			offset, err := audit.Read(l.Env, 0, func(*audit.Event) {})
			if err != nil {
				t.Fatal(err)
			}
			p, err := l.StartReplica(ctx, name, user)
			if err != nil {
				t.Fatal(err)
			}
			defer p.Kill()
			var got []grant
			for _, r := range missingReported(t, p) {
				for _, rule := range r.rules {
					got = append(got, r.grants(rule)...)
				}
			}
			sortGrants(got)
			sortGrants(want)
			if !slices.Equal(got, want) {
				t.Errorf("reported missing\n%v\nwant (the rule removed)\n%v", got, want)
			}
			if !strings.Contains(p.Log(), "RBAC: this replica lacks") {
				t.Errorf("the log does not report the missing rule:\n%s", p.Log())
			}
			// It stands by: a moment later it still has written no Lease.
			time.Sleep(time.Second)
			if _, err := audit.Read(l.Env, offset, func(ev *audit.Event) {
				if ev.User.Username == name && ev.ObjectRef.Resource == "leases" && ev.Verb != "get" && ev.Verb != "list" && ev.Verb != "watch" {
					t.Errorf("%s %s lease %s: a replica missing a permission campaigned", name, ev.Verb, ev.ObjectRef.Name)
				}
			}); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func sortGrants(gs []grant) {
	slices.SortFunc(gs, func(a, b grant) int { return strings.Compare(fmt.Sprint(a), fmt.Sprint(b)) })
}

func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, timeout)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
