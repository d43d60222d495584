// Package rbactest checks that a program's printed RBAC is exactly what
// it needs, for the tests of the sample and of scaffolded projects: it
// reads the Roles and ClusterRoles of --print-rbac, binds them (or all
// but one rule of them) to a subject, expands rules into single grants
// for comparison, and reads the rules a replica's /readyz says it lacks.
package rbactest

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/yaml"

	"github.com/rein-k8s/rein/internal/testkit/audit"
	"github.com/rein-k8s/rein/pkg/testenv"
)

// Role is one Role or ClusterRole of printed RBAC: its rules and where
// they apply (Namespace is empty for a ClusterRole).
type Role struct {
	Kind, Namespace string
	Rules           []rbacv1.PolicyRule
}

// Grant is one verb on one resource (and name) in a role: a PolicyRule
// expanded, so that two rule sets compare whatever their grouping.
type Grant struct{ Kind, Namespace, Group, Resource, Name, Verb string }

// Grants expands rule, a rule of r, into single grants.
func (r Role) Grants(rule rbacv1.PolicyRule) []Grant {
	names := rule.ResourceNames
	if len(names) == 0 {
		names = []string{""}
	}
	var out []Grant
	for _, g := range rule.APIGroups {
		for _, res := range rule.Resources {
			for _, n := range names {
				for _, v := range rule.Verbs {
					out = append(out, Grant{r.Kind, r.Namespace, g, res, n, v})
				}
			}
		}
	}
	return out
}

// AllGrants expands every rule of roles, sorted.
func AllGrants(roles []Role) []Grant {
	var out []Grant
	for _, r := range roles {
		for _, rule := range r.Rules {
			out = append(out, r.Grants(rule)...)
		}
	}
	SortGrants(out)
	return out
}

// SortGrants sorts gs into a stable order for comparison.
func SortGrants(gs []Grant) {
	slices.SortFunc(gs, func(a, b Grant) int { return strings.Compare(fmt.Sprint(a), fmt.Sprint(b)) })
}

// Parse reads the ClusterRoles and Roles of YAML documents strictly as
// RBAC objects; bindings are checked for form and skipped, and any other
// kind is an error.
func Parse(data []byte) ([]Role, error) {
	var roles []Role
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return roles, nil
		}
		if err != nil {
			return nil, err
		}
		if len(bytes.TrimSpace(doc)) == 0 {
			continue
		}
		var head struct{ Kind string }
		if err := yaml.Unmarshal(doc, &head); err != nil {
			return nil, fmt.Errorf("%w\n%s", err, doc)
		}
		var into any
		switch head.Kind {
		case "ClusterRole":
			into = &rbacv1.ClusterRole{}
		case "Role":
			into = &rbacv1.Role{}
		case "ClusterRoleBinding":
			into = &rbacv1.ClusterRoleBinding{}
		case "RoleBinding":
			into = &rbacv1.RoleBinding{}
		default:
			return nil, fmt.Errorf("unexpected %q in RBAC:\n%s", head.Kind, doc)
		}
		if err := yaml.UnmarshalStrict(doc, into); err != nil {
			return nil, fmt.Errorf("%w\n%s", err, doc)
		}
		switch o := into.(type) {
		case *rbacv1.ClusterRole:
			roles = append(roles, Role{"ClusterRole", "", o.Rules})
		case *rbacv1.Role:
			roles = append(roles, Role{"Role", o.Namespace, o.Rules})
		}
	}
}

// Rule names one rule of a role set: roles[Role].Rules[Rule].
type Rule struct{ Role, Rule int }

// EachRule lists every rule of roles, in order.
func EachRule(roles []Role) []Rule {
	var out []Rule
	for i, r := range roles {
		for j := range r.Rules {
			out = append(out, Rule{i, j})
		}
	}
	return out
}

// Without returns roles less the rule at, and that rule's role with only
// that rule (what a replica bound to the rest should report missing).
func Without(roles []Role, at Rule) (rest []Role, removed Role) {
	for i, r := range roles {
		if i == at.Role {
			removed = Role{r.Kind, r.Namespace, []rbacv1.PolicyRule{r.Rules[at.Rule]}}
			r.Rules = slices.Delete(slices.Clone(r.Rules), at.Rule, at.Rule+1)
		}
		rest = append(rest, r)
	}
	return rest, removed
}

// Bind creates roles, named name, and binds them to subject, as an
// administrator's client.
func Bind(ctx context.Context, admin kubernetes.Interface, name string, subject rbacv1.Subject, roles []Role) error {
	rbac := admin.RbacV1()
	subjects := []rbacv1.Subject{subject}
	for _, r := range roles {
		meta := metav1.ObjectMeta{Name: name, Namespace: r.Namespace}
		ref := rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: r.Kind, Name: name}
		var err error
		if r.Kind == "ClusterRole" {
			if _, err = rbac.ClusterRoles().Create(ctx, &rbacv1.ClusterRole{ObjectMeta: meta, Rules: r.Rules}, metav1.CreateOptions{}); err == nil {
				_, err = rbac.ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{ObjectMeta: meta, RoleRef: ref, Subjects: subjects}, metav1.CreateOptions{})
			}
		} else {
			if _, err = rbac.Roles(r.Namespace).Create(ctx, &rbacv1.Role{ObjectMeta: meta, Rules: r.Rules}, metav1.CreateOptions{}); err == nil {
				_, err = rbac.RoleBindings(r.Namespace).Create(ctx, &rbacv1.RoleBinding{ObjectMeta: meta, RoleRef: ref, Subjects: subjects}, metav1.CreateOptions{})
			}
		}
		if err != nil {
			return fmt.Errorf("%s %s for %s: %w", r.Kind, name, subject.Name, err)
		}
	}
	return nil
}

// User is the subject of a user name (a testenv user's).
func User(name string) rbacv1.Subject {
	return rbacv1.Subject{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: name}
}

// missingMarker begins the YAML a replica's /readyz shows when its
// start-up check found rules missing.
const missingMarker = "# add these rules"

// MissingFromReadyz polls url, a replica's /readyz, until it answers 503
// with the rules to add, and returns them. It gives up when ctx ends,
// returning the last answer in the error.
func MissingFromReadyz(ctx context.Context, url string) ([]Role, error) {
	last := ""
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return nil, err
		}
		if resp, err := http.DefaultClient.Do(req); err == nil {
			body, _ := io.ReadAll(resp.Body)
			_ = resp.Body.Close()
			last = string(body)
			if i := strings.Index(last, missingMarker); i >= 0 && resp.StatusCode == http.StatusServiceUnavailable {
				// The YAML is indented under the "[-]rbac failed" line,
				// and the last line of the answer sums the checks up.
				doc, _, _ := strings.Cut(last[i:], "\nreadyz check failed")
				return Parse([]byte(strings.ReplaceAll(doc, "\n    ", "\n")))
			}
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("%s never reported missing permissions (%w); last answer:\n%s", url, ctx.Err(), last)
		case <-tick.C:
		}
	}
}

// Requests reads env's audit log from offset on and returns how many
// requests user sent and, one line each, those the apiserver forbade
// (a 403: a permission the user lacks, or an admission policy's denial).
func Requests(env *testenv.Env, offset int64, user string) (sent int, forbidden []string, err error) {
	_, err = audit.Read(env, offset, func(ev *audit.Event) {
		if ev.User.Username != user {
			return
		}
		sent++
		if ev.ResponseStatus.Code == http.StatusForbidden {
			forbidden = append(forbidden, fmt.Sprintf("%s %s %s/%s", ev.Verb, ev.ObjectRef.Resource, ev.ObjectRef.Namespace, ev.ObjectRef.Name))
		}
	})
	return sent, forbidden, err
}

// LeaseWrites reads env's audit log from offset on and returns, one line
// each, the Lease writes user sent: a replica that campaigned.
func LeaseWrites(env *testenv.Env, offset int64, user string) ([]string, error) {
	var writes []string
	_, err := audit.Read(env, offset, func(ev *audit.Event) {
		if ev.User.Username == user && ev.ObjectRef.Resource == "leases" && ev.Verb != "get" && ev.Verb != "list" && ev.Verb != "watch" {
			writes = append(writes, ev.Verb+" lease "+ev.ObjectRef.Name)
		}
	})
	return writes, err
}
