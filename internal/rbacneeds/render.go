package rbacneeds

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"

	rbacv1 "k8s.io/api/rbac/v1"
)

// PolicyRule is an RBAC rule made of needs, with their reasons.
type PolicyRule struct {
	rbacv1.PolicyRule
	Why []string
}

// Role is the rules of one Role (Namespace set) or of the ClusterRole
// (Namespace "").
type Role struct {
	Namespace string
	Rules     []PolicyRule
}

// Roles groups needs (as Merge returns them) into the ClusterRole (first,
// when it has rules) and one Role per namespace, sorted by namespace, and
// each into as few PolicyRules as merging alike ones gives: the verbs of
// one resource and name, then the resources with the same verbs, then
// the names with the same resources and verbs. The grouping depends on
// the needs alone: the same needs make the same roles.
func Roles(needs []Need) []Role {
	byNS := map[string][]Need{}
	for _, n := range needs {
		byNS[n.Namespace] = append(byNS[n.Namespace], n)
	}
	namespaces := make([]string, 0, len(byNS))
	for ns := range byNS {
		namespaces = append(namespaces, ns)
	}
	slices.Sort(namespaces) // "" (the ClusterRole) first
	out := make([]Role, 0, len(namespaces))
	for _, ns := range namespaces {
		out = append(out, Role{Namespace: ns, Rules: policyRules(byNS[ns])})
	}
	return out
}

// entry is a PolicyRule being merged.
type entry struct {
	group            string
	resources, names []string
	verbs            []string
	why              map[string]bool
}

func (e *entry) absorb(o *entry) {
	for w := range o.why {
		e.why[w] = true
	}
}

func policyRules(needs []Need) []PolicyRule {
	// The verbs of each (group, resource, name).
	type object struct{ group, resource, name string }
	perObject := map[object]*entry{}
	var order []object
	for _, n := range needs {
		k := object{n.Group, n.Resource, n.Name}
		e := perObject[k]
		if e == nil {
			e = &entry{group: n.Group, resources: []string{n.Resource}, why: map[string]bool{}}
			if n.Name != "" {
				e.names = []string{n.Name}
			}
			perObject[k] = e
			order = append(order, k)
		}
		if !slices.Contains(e.verbs, n.Verb) {
			e.verbs = append(e.verbs, n.Verb)
		}
		for _, w := range n.Why {
			e.why[w] = true
		}
	}
	entries := make([]*entry, 0, len(order))
	for _, k := range order {
		e := perObject[k]
		slices.SortFunc(e.verbs, compareVerbs)
		entries = append(entries, e)
	}
	// The resources with the same group, name and verbs.
	entries = mergeBy(entries, func(e *entry) string {
		return e.group + "\x00" + strings.Join(e.names, ",") + "\x00" + strings.Join(e.verbs, ",")
	}, func(into, e *entry) { into.resources = append(into.resources, e.resources...) })
	// The names with the same group, resources and verbs (never with
	// every object: a rule with no name is another rule).
	entries = mergeBy(entries, func(e *entry) string {
		return e.group + "\x00" + strings.Join(e.resources, ",") + "\x00" + strings.Join(e.verbs, ",") + "\x00" + strconv.FormatBool(len(e.names) == 0)
	}, func(into, e *entry) { into.names = append(into.names, e.names...) })
	out := make([]PolicyRule, 0, len(entries))
	for _, e := range entries {
		slices.Sort(e.resources)
		slices.Sort(e.names)
		out = append(out, PolicyRule{
			PolicyRule: rbacv1.PolicyRule{APIGroups: []string{e.group}, Resources: e.resources, ResourceNames: e.names, Verbs: e.verbs},
			Why:        sortedKeys(e.why),
		})
	}
	slices.SortFunc(out, func(a, b PolicyRule) int {
		return cmp.Or(strings.Compare(a.APIGroups[0], b.APIGroups[0]),
			slices.Compare(a.Resources, b.Resources),
			cmp.Compare(len(a.ResourceNames), len(b.ResourceNames)), // every object first
			slices.Compare(a.ResourceNames, b.ResourceNames),
			slices.CompareFunc(a.Verbs, b.Verbs, compareVerbs))
	})
	return out
}

// mergeBy merges the entries with the same key, in the order of their
// first appearance, after sorting them so that the outcome does not
// depend on the input's order.
func mergeBy(entries []*entry, key func(*entry) string, merge func(into, e *entry)) []*entry {
	slices.SortFunc(entries, func(a, b *entry) int {
		return cmp.Or(strings.Compare(key(a), key(b)), slices.Compare(a.resources, b.resources), slices.Compare(a.names, b.names))
	})
	byKey := map[string]*entry{}
	var out []*entry
	for _, e := range entries {
		k := key(e)
		if into, ok := byKey[k]; ok {
			merge(into, e)
			into.absorb(e)
			continue
		}
		byKey[k] = e
		out = append(out, e)
	}
	return out
}

// Subject is who the bindings bind: a ServiceAccount.
type Subject struct {
	// Namespace of the ServiceAccount; "" when not known (a RoleBinding
	// then means its own namespace; the ClusterRoleBinding prints
	// NamespacePlaceholder).
	Namespace, Name string
}

// NamespacePlaceholder is the ServiceAccount namespace the
// ClusterRoleBinding prints when none is known: not a valid name, so
// that applying it unedited fails loudly instead of binding the wrong
// account.
const NamespacePlaceholder = "SERVICE-ACCOUNT-NAMESPACE"

// YAML renders roles as Kubernetes manifests: the ClusterRole and each
// Role named roleName, each rule under comments saying why it is needed,
// and, when bindings is true, a ClusterRoleBinding and RoleBindings of
// them to subject. A Role of Unresolved namespace has no
// metadata.namespace. The output depends on its arguments alone.
func YAML(header string, roles []Role, roleName string, subject Subject, bindings bool) string {
	var b strings.Builder
	for _, line := range strings.Split(strings.TrimRight(header, "\n"), "\n") {
		if line == "" {
			b.WriteString("#\n")
		} else {
			b.WriteString("# " + line + "\n")
		}
	}
	first := true
	doc := func() {
		if !first {
			b.WriteString("---\n")
		}
		first = false
	}
	for _, role := range roles {
		kind := "Role"
		if role.Namespace == "" {
			kind = "ClusterRole"
		}
		doc()
		fmt.Fprintf(&b, "apiVersion: rbac.authorization.k8s.io/v1\nkind: %s\nmetadata:\n  name: %s\n", kind, roleName)
		writeNamespace(&b, role.Namespace)
		b.WriteString("rules:\n")
		for _, r := range role.Rules {
			for _, w := range r.Why {
				b.WriteString("# " + w + "\n")
			}
			fmt.Fprintf(&b, "- apiGroups: %s\n  resources: %s\n", flow(r.APIGroups), flow(r.Resources))
			if len(r.ResourceNames) > 0 {
				fmt.Fprintf(&b, "  resourceNames: %s\n", flow(r.ResourceNames))
			}
			fmt.Fprintf(&b, "  verbs: %s\n", flow(r.Verbs))
		}
		if !bindings {
			continue
		}
		doc()
		fmt.Fprintf(&b, "apiVersion: rbac.authorization.k8s.io/v1\nkind: %sBinding\nmetadata:\n  name: %s\n", kind, roleName)
		writeNamespace(&b, role.Namespace)
		fmt.Fprintf(&b, "roleRef:\n  apiGroup: rbac.authorization.k8s.io\n  kind: %s\n  name: %s\nsubjects:\n- kind: ServiceAccount\n  name: %s\n", kind, roleName, subject.Name)
		switch {
		case subject.Namespace != "":
			fmt.Fprintf(&b, "  namespace: %s\n", subject.Namespace)
		case kind == "ClusterRole":
			fmt.Fprintf(&b, "  namespace: %s\n", NamespacePlaceholder)
		}
	}
	return b.String()
}

func writeNamespace(b *strings.Builder, ns string) {
	if ns != "" && ns != Unresolved {
		fmt.Fprintf(b, "  namespace: %s\n", ns)
	}
}

// flow writes a list as a YAML flow sequence of double-quoted strings.
func flow(items []string) string {
	q := make([]string, len(items))
	for i, s := range items {
		q[i] = strconv.Quote(s)
	}
	return "[" + strings.Join(q, ", ") + "]"
}

// FromPolicyRules turns RBAC rules into needs in namespace ns (""
// cluster-wide), each verb on each resource and name: what a program
// declares beyond what rein registers. Non-resource URLs are not
// expressible and are skipped.
func FromPolicyRules(s *Set, why, ns string, rules []rbacv1.PolicyRule) {
	for _, r := range rules {
		names := r.ResourceNames
		if len(names) == 0 {
			names = []string{""}
		}
		for _, g := range r.APIGroups {
			for _, res := range r.Resources {
				for _, name := range names {
					s.Add(why, Rule{Namespace: ns, Group: g, Resource: res, Name: name}, r.Verbs...)
				}
			}
		}
	}
}
