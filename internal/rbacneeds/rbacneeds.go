// Package rbacneeds is the registry of the permissions a rein program
// needs, filled by the code that will use them, as it is set up: a
// factory's caches and controllers, apply sets, event recorders, the
// webhook certificates and CA injection, and pkg/start's Leases. pkg/start
// prints them (--print-rbac) and checks them at start-up.
//
// A Rule is one verb on one resource (subresources as "plural/sub"),
// cluster-wide or in one namespace, on every object or one by name. Merge
// drops the rules a broader one grants and sorts the rest, so that the
// same program prints the same YAML every time.
package rbacneeds

import (
	"cmp"
	"slices"
	"strings"
	"sync"
)

// Rule is one permission.
type Rule struct {
	// Namespace is "" for cluster-wide (a ClusterRole: every namespace,
	// and cluster-scoped kinds), else the namespace of a Role, or
	// Unresolved.
	Namespace string
	Group     string
	// Resource is the plural, or plural/subresource.
	Resource string
	// Name is the one object the rule is for; "" is every object.
	Name string
	Verb string
}

// Unresolved is the Namespace of a rule for the replica's own namespace
// when it is not known yet (printing outside a pod, with no
// --leader-elect-resource-namespace): it prints as a Role with no
// metadata.namespace, for `kubectl apply -n` or kustomize to set.
const Unresolved = "\x00"

// Need is a rule with why it is needed: who registered it.
type Need struct {
	Rule
	Why []string
}

// Set collects rules; the zero value is ready, and safe for concurrent use.
type Set struct {
	mu    sync.Mutex
	rules map[Rule]map[string]bool
}

// Process holds the needs of what is not tied to a factory: event
// recorders, the webhook certificates and CA injection. A program is one
// process, so these are its needs (a test binary that builds several
// programs gathers all of theirs).
var Process = &Set{}

// Add records base with each of verbs (base.Verb is ignored), needed
// because of why.
func (s *Set) Add(why string, base Rule, verbs ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.rules == nil {
		s.rules = map[Rule]map[string]bool{}
	}
	for _, v := range verbs {
		r := base
		r.Verb = v
		if s.rules[r] == nil {
			s.rules[r] = map[string]bool{}
		}
		s.rules[r][why] = true
	}
}

// addTo copies s's rules into into.
func (s *Set) addTo(into map[Rule]map[string]bool) {
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for r, whys := range s.rules {
		if into[r] == nil {
			into[r] = map[string]bool{}
		}
		for w := range whys {
			into[r][w] = true
		}
	}
}

// Merge returns the rules of sets, each once, without those a broader
// rule of the same group, resource and verb grants (cluster-wide covers a
// namespace, every object covers one by name; their reasons move to it),
// sorted by namespace, group, resource, name and verb.
func Merge(sets ...*Set) []Need {
	all := map[Rule]map[string]bool{}
	for _, s := range sets {
		s.addTo(all)
	}
	kept := map[Rule]map[string]bool{}
	for r, whys := range all {
		into := r
		for _, c := range coverers(r) {
			if _, ok := all[c]; ok {
				into = c
				break
			}
		}
		if kept[into] == nil {
			kept[into] = map[string]bool{}
		}
		for w := range whys {
			kept[into][w] = true
		}
	}
	out := make([]Need, 0, len(kept))
	for r, whys := range kept {
		out = append(out, Need{Rule: r, Why: sortedKeys(whys)})
	}
	slices.SortFunc(out, func(a, b Need) int { return compareRules(a.Rule, b.Rule) })
	return out
}

// coverers lists the rules that would grant r and more, broadest first:
// when one is present, the first present one is itself not covered.
func coverers(r Rule) []Rule {
	var out []Rule
	for _, c := range []Rule{
		{Group: r.Group, Resource: r.Resource, Verb: r.Verb},
		{Group: r.Group, Resource: r.Resource, Verb: r.Verb, Name: r.Name},
		{Group: r.Group, Resource: r.Resource, Verb: r.Verb, Namespace: r.Namespace},
	} {
		if c != r && !slices.Contains(out, c) {
			out = append(out, c)
		}
	}
	return out
}

// verbOrder is the order verbs print in: reads, then writes, as
// Kubernetes' own roles list them.
var verbOrder = []string{"get", "list", "watch", "create", "update", "patch", "delete", "deletecollection"}

func compareVerbs(a, b string) int {
	ia, ib := slices.Index(verbOrder, a), slices.Index(verbOrder, b)
	if ia < 0 {
		ia = len(verbOrder)
	}
	if ib < 0 {
		ib = len(verbOrder)
	}
	return cmp.Or(cmp.Compare(ia, ib), strings.Compare(a, b))
}

func compareRules(a, b Rule) int {
	return cmp.Or(strings.Compare(a.Namespace, b.Namespace), strings.Compare(a.Group, b.Group),
		strings.Compare(a.Resource, b.Resource), strings.Compare(a.Name, b.Name), compareVerbs(a.Verb, b.Verb))
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// SplitResource splits "plural/sub" into the plural and the subresource.
func SplitResource(resource string) (plural, sub string) {
	plural, sub, _ = strings.Cut(resource, "/")
	return plural, sub
}

// String is the rule as a sentence: "list virtualmachines.vm.rein.dev in
// all namespaces", "update secrets vm-system/cert".
func (r Rule) String() string {
	res := r.Resource
	if r.Group != "" {
		plural, sub := SplitResource(res)
		res = plural + "." + r.Group
		if sub != "" {
			res = plural + "/" + sub + "." + r.Group
		}
	}
	var where string
	switch {
	case r.Namespace == Unresolved && r.Name != "":
		where = " " + r.Name + " in the replica's namespace"
	case r.Namespace == Unresolved:
		where = " in the replica's namespace"
	case r.Namespace == "" && r.Name != "":
		where = " " + r.Name
	case r.Namespace == "":
		where = " cluster-wide"
	case r.Name != "":
		where = " " + r.Namespace + "/" + r.Name
	default:
		where = " in namespace " + r.Namespace
	}
	return r.Verb + " " + res + where
}
