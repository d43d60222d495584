package rbacneeds

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// sample is a program's needs, in the shapes rein registers them.
func sample(s *Set) {
	vm := Rule{Group: "vm.rein.dev", Resource: "virtualmachines"}
	s.Add("cache", vm, "list", "watch")
	s.Add("controller", vm, "get", "update", "patch")
	s.Add("status", Rule{Group: "vm.rein.dev", Resource: "virtualmachines/status"}, "update", "patch")
	s.Add("apply", Rule{Resource: "configmaps"}, "list", "watch", "create", "patch", "delete")
	s.Add("apply", Rule{Resource: "secrets"}, "list", "watch", "create", "patch", "delete")
	s.Add("cert", Rule{Namespace: "vm-system", Resource: "secrets"}, "create")
	s.Add("cert", Rule{Namespace: "vm-system", Resource: "secrets", Name: "cert"}, "get", "list", "watch", "update")
	s.Add("lease", Rule{Namespace: "vm-system", Group: "coordination.k8s.io", Resource: "leases"}, "create")
	s.Add("lease", Rule{Namespace: "vm-system", Group: "coordination.k8s.io", Resource: "leases", Name: "ctl"}, "get", "list", "watch", "update")
	s.Add("inject", Rule{Group: "admissionregistration.k8s.io", Resource: "validatingwebhookconfigurations", Name: "ctl"}, "get", "update")
	s.Add("inject", Rule{Group: "admissionregistration.k8s.io", Resource: "mutatingwebhookconfigurations", Name: "ctl"}, "get", "update")
}

func TestMergeDropsWhatABroaderRuleGrants(t *testing.T) {
	s := &Set{}
	sample(s)
	needs := Merge(s)
	for _, n := range needs {
		if n.Resource == "secrets" && n.Namespace == "vm-system" && n.Verb != "get" && n.Verb != "update" {
			t.Errorf("%v kept: the cluster-wide secrets rule grants it", n.Rule)
		}
	}
	// The reasons of a dropped rule move to the one that grants it.
	for _, n := range needs {
		if n.Rule == (Rule{Resource: "secrets", Verb: "create"}) && !reflect.DeepEqual(n.Why, []string{"apply", "cert"}) {
			t.Errorf("create secrets: why %v, want [apply cert]", n.Why)
		}
	}
	// Nothing left is granted by another rule left.
	for _, a := range needs {
		for _, c := range coverers(a.Rule) {
			for _, b := range needs {
				if b.Rule == c {
					t.Errorf("%v kept beside %v, which grants it", a.Rule, b.Rule)
				}
			}
		}
	}
}

// TestRenderIsStable: the same needs, registered in any order, render the
// same YAML, which parses strictly as RBAC objects granting exactly the
// needs.
func TestRenderIsStable(t *testing.T) {
	s := &Set{}
	sample(s)
	want := YAML("header", Roles(Merge(s)), "ctl", Subject{Namespace: "vm-system", Name: "ctl"}, true)
	for range 20 {
		// Register the same needs in another order.
		shuffled := &Set{}
		var all []Need
		for _, n := range Merge(s) {
			for _, w := range n.Why {
				all = append(all, Need{Rule: n.Rule, Why: []string{w}})
			}
		}
		rand.Shuffle(len(all), func(i, j int) { all[i], all[j] = all[j], all[i] })
		for _, n := range all {
			shuffled.Add(n.Why[0], n.Rule, n.Verb)
		}
		if got := YAML("header", Roles(Merge(shuffled)), "ctl", Subject{Namespace: "vm-system", Name: "ctl"}, true); got != want {
			t.Fatalf("output depends on the order of registration:\n%s\n---- vs ----\n%s", got, want)
		}
	}
	objs := parseRBAC(t, want)
	kinds := map[string]int{}
	granted := map[Rule]bool{}
	for _, o := range objs {
		kinds[o.kind]++
		for _, r := range o.rules {
			for _, a := range atoms(o.namespace, r) {
				granted[a] = true
			}
		}
	}
	if !reflect.DeepEqual(kinds, map[string]int{"ClusterRole": 1, "ClusterRoleBinding": 1, "Role": 1, "RoleBinding": 1}) {
		t.Errorf("objects %v", kinds)
	}
	needed := map[Rule]bool{}
	for _, n := range Merge(s) {
		needed[n.Rule] = true
	}
	if !reflect.DeepEqual(granted, needed) {
		t.Errorf("the YAML grants\n%v\nwant\n%v", granted, needed)
	}
}

// TestRemovedRuleRendersAlone: the needs of any one rendered rule render
// as exactly that rule, so that a replica missing one rule of its roles
// reports that rule.
func TestRemovedRuleRendersAlone(t *testing.T) {
	s := &Set{}
	sample(s)
	needs := Merge(s)
	for _, role := range Roles(needs) {
		for i, r := range role.Rules {
			var only []Need
			set := map[Rule]bool{}
			for _, a := range atoms(role.Namespace, r.PolicyRule) {
				set[a] = true
			}
			for _, n := range needs {
				if set[n.Rule] {
					only = append(only, n)
				}
			}
			got := Roles(only)
			if len(got) != 1 || len(got[0].Rules) != 1 || !reflect.DeepEqual(got[0].Rules[0].PolicyRule, r.PolicyRule) {
				t.Errorf("role %q rule %d %+v alone renders as %+v", role.Namespace, i, r.PolicyRule, got)
			}
		}
	}
}

func TestUnresolvedNamespacePrintsNone(t *testing.T) {
	s := &Set{}
	s.Add("lease", Rule{Namespace: Unresolved, Group: "coordination.k8s.io", Resource: "leases"}, "create")
	out := YAML("", Roles(Merge(s)), "ctl", Subject{Name: "ctl"}, true)
	for _, o := range parseRBAC(t, out) {
		if o.namespace != "" {
			t.Errorf("%s in namespace %q, want none (kubectl -n or kustomize sets it)", o.kind, o.namespace)
		}
	}
	if !strings.Contains(out, "subjects:\n- kind: ServiceAccount\n  name: ctl\n") {
		t.Errorf("binding:\n%s", out)
	}
}

type rbacObject struct {
	kind, namespace string
	rules           []rbacv1.PolicyRule
}

// parseRBAC decodes every document strictly into its RBAC type.
func parseRBAC(t *testing.T, out string) []rbacObject {
	t.Helper()
	var objs []rbacObject
	r := utilyaml.NewYAMLReader(bufio.NewReader(strings.NewReader(out)))
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return objs
		}
		if err != nil {
			t.Fatal(err)
		}
		if len(bytes.TrimSpace(doc)) == 0 {
			continue
		}
		var head struct{ Kind string }
		if err := yaml.Unmarshal(doc, &head); err != nil {
			t.Fatal(err)
		}
		o := rbacObject{kind: head.Kind}
		var err2 error
		switch head.Kind {
		case "ClusterRole":
			var v rbacv1.ClusterRole
			err2 = yaml.UnmarshalStrict(doc, &v)
			o.rules = v.Rules
		case "Role":
			var v rbacv1.Role
			err2 = yaml.UnmarshalStrict(doc, &v)
			o.namespace, o.rules = v.Namespace, v.Rules
		case "ClusterRoleBinding":
			var v rbacv1.ClusterRoleBinding
			err2 = yaml.UnmarshalStrict(doc, &v)
		case "RoleBinding":
			var v rbacv1.RoleBinding
			err2 = yaml.UnmarshalStrict(doc, &v)
			o.namespace = v.Namespace
		default:
			t.Fatalf("unexpected document:\n%s", doc)
		}
		if err2 != nil {
			t.Fatalf("%s: %v\n%s", head.Kind, err2, doc)
		}
		objs = append(objs, o)
	}
}

// atoms expands a PolicyRule of namespace ns into one Rule per verb,
// resource and name.
func atoms(ns string, r rbacv1.PolicyRule) []Rule {
	s := &Set{}
	FromPolicyRules(s, "x", ns, []rbacv1.PolicyRule{r})
	var out []Rule
	for _, n := range Merge(s) {
		out = append(out, n.Rule)
	}
	return out
}
