package vmcontroller_test

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"

	"github.com/rein-k8s/rein/pkg/leader"
	"github.com/rein-k8s/rein/pkg/testenv"
)

// deployDir holds the sample's kustomize manifests.
const deployDir = "deploy"

// fieldManager owns the test's server-side applies.
const fieldManager = "rein-test"

// kustomization is the subset of kustomize's Kustomization that deploy/
// uses. Reading it strictly makes the tests fail when someone adds a
// kustomize feature (labels, patches, images…) that applyAll does not
// reproduce, instead of testing something other than what kustomize builds.
type kustomization struct {
	APIVersion string   `json:"apiVersion"`
	Kind       string   `json:"kind"`
	Namespace  string   `json:"namespace"`
	Resources  []string `json:"resources"`
}

// manifest is one document of one file of the kustomization.
type manifest struct {
	file string // relative to deploy/
	obj  *unstructured.Unstructured
}

func (m manifest) String() string {
	return fmt.Sprintf("%s: %s %s", m.file, m.obj.GetKind(), m.obj.GetName())
}

// loadDeploy reads deploy/kustomization.yaml and every document of every
// file it lists, in order.
func loadDeploy(t *testing.T) (kustomization, []manifest) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(deployDir, "kustomization.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var k kustomization
	if err := yaml.UnmarshalStrict(raw, &k); err != nil {
		t.Fatalf("deploy/kustomization.yaml uses more than namespace and resources, which this test does not reproduce: %v", err)
	}
	if k.Kind != "Kustomization" || len(k.Resources) == 0 {
		t.Fatalf("deploy/kustomization.yaml: kind %q with %d resources, want a Kustomization listing resources", k.Kind, len(k.Resources))
	}
	var out []manifest
	for _, file := range k.Resources {
		docs, err := readDocuments(filepath.Join(deployDir, file))
		if err != nil {
			t.Fatalf("deploy/kustomization.yaml lists %s: %v", file, err)
		}
		if len(docs) == 0 {
			t.Fatalf("deploy/%s holds no object", file)
		}
		for _, obj := range docs {
			out = append(out, manifest{file: file, obj: obj})
		}
	}
	return k, out
}

// readDocuments decodes every non-empty YAML document of path.
func readDocuments(path string) ([]*unstructured.Unstructured, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer func() { _ = f.Close() }()
	reader := utilyaml.NewYAMLReader(bufio.NewReader(f))
	var objs []*unstructured.Unstructured
	for i := 1; ; i++ {
		doc, err := reader.Read()
		if errors.Is(err, io.EOF) {
			return objs, nil
		}
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", i, err)
		}
		js, err := yaml.YAMLToJSON(doc)
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", i, err)
		}
		if js = bytes.TrimSpace(js); len(js) == 0 || string(js) == "null" {
			continue // comments only
		}
		obj := &unstructured.Unstructured{}
		if err := obj.UnmarshalJSON(js); err != nil {
			return nil, fmt.Errorf("document %d: %w", i, err)
		}
		if obj.GetName() == "" {
			return nil, fmt.Errorf("document %d: %s without metadata.name", i, obj.GetKind())
		}
		objs = append(objs, obj)
	}
}

// warnings collects the apiserver's Warning headers (deprecations, Pod
// Security "would violate" messages…).
type warnings struct {
	mu   sync.Mutex
	msgs []string
}

func (w *warnings) HandleWarningHeader(_ int, _ string, text string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.msgs = append(w.msgs, text)
}

func (w *warnings) take() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	msgs := w.msgs
	w.msgs = nil
	return msgs
}

// applier server-side-applies manifests through a dynamic client, mapping
// kinds to resources with discovery and setting the kustomization's
// namespace on namespaced objects that name none, as kustomize does.
type applier struct {
	namespace string
	dyn       *dynamic.DynamicClient
	disc      *discovery.DiscoveryClient
	mapper    meta.RESTMapper
	warn      *warnings
}

func newApplier(t *testing.T, env *testenv.Env, namespace string) *applier {
	t.Helper()
	w := &warnings{}
	cfg := env.Config()
	cfg.WarningHandler = w
	a := &applier{
		namespace: namespace,
		dyn:       dynamic.NewForConfigOrDie(cfg),
		disc:      discovery.NewDiscoveryClientForConfigOrDie(cfg),
		warn:      w,
	}
	a.refreshMapper(t)
	return a
}

// refreshMapper reads discovery again, after CRDs were installed.
func (a *applier) refreshMapper(t *testing.T) {
	t.Helper()
	groups, err := restmapper.GetAPIGroupResources(a.disc)
	if err != nil {
		t.Fatalf("discovery: %v", err)
	}
	a.mapper = restmapper.NewDiscoveryRESTMapper(groups)
}

// apply applies m, for real or as a dry run, and returns the warnings the
// apiserver sent with its answer.
func (a *applier) apply(t *testing.T, m manifest, dryRun bool) ([]string, error) {
	t.Helper()
	obj := m.obj.DeepCopy()
	gvk := obj.GroupVersionKind()
	mapping, err := a.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if err != nil {
		return nil, fmt.Errorf("the apiserver serves no %s: %w", gvk, err)
	}
	var res dynamic.ResourceInterface = a.dyn.Resource(mapping.Resource)
	if mapping.Scope.Name() == meta.RESTScopeNameNamespace {
		if obj.GetNamespace() == "" {
			obj.SetNamespace(a.namespace)
		}
		if obj.GetNamespace() == "" {
			return nil, errors.New("namespaced, with no namespace in the object or in kustomization.yaml")
		}
		res = a.dyn.Resource(mapping.Resource).Namespace(obj.GetNamespace())
	} else if obj.GetNamespace() != "" {
		return nil, fmt.Errorf("cluster-scoped, but sets namespace %q", obj.GetNamespace())
	}
	body, err := obj.MarshalJSON()
	if err != nil {
		return nil, err
	}
	opts := metav1.PatchOptions{FieldManager: fieldManager, Force: ptr.To(true)}
	if dryRun {
		opts.DryRun = []string{metav1.DryRunAll}
	}
	a.warn.take()
	_, err = res.Patch(t.Context(), obj.GetName(), types.ApplyPatchType, body, opts)
	return a.warn.take(), err
}

// startEnv starts a control plane of the test's own: the tests of this
// package may run in parallel and share no state.
func startEnv(t *testing.T) *testenv.Env {
	t.Helper()
	env, err := testenv.Start(testenv.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := env.Stop(); err != nil {
			t.Error(err)
		}
	})
	return env
}

// applyNamespaces creates the kustomization's Namespace objects for real:
// the apiserver refuses even a dry run in a namespace that does not exist.
func applyNamespaces(t *testing.T, a *applier, ms []manifest) {
	t.Helper()
	for _, m := range ms {
		if m.obj.GroupVersionKind().GroupKind().String() != "Namespace" {
			continue
		}
		if _, err := a.apply(t, m, false); err != nil {
			t.Fatalf("create %v: %v", m, err)
		}
	}
}

// TestDeployListsEveryManifest checks that kustomization.yaml lists every
// YAML file of deploy/ and deploy/crd/, and nothing twice, so that none is
// left out of `kubectl apply -k` (or of TestDeployManifestsDryRun).
func TestDeployListsEveryManifest(t *testing.T) {
	k, _ := loadDeploy(t)
	listed := map[string]int{}
	for _, r := range k.Resources {
		listed[filepath.ToSlash(filepath.Clean(r))]++
	}
	var files []string
	for _, pattern := range []string{"*.yaml", "*.yml", "crd/*.yaml", "crd/*.yml", "webhook/*.yaml", "webhook/*.yml"} {
		matches, err := filepath.Glob(filepath.Join(deployDir, pattern))
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range matches {
			rel, _ := filepath.Rel(deployDir, m)
			if rel = filepath.ToSlash(rel); rel != "kustomization.yaml" {
				files = append(files, rel)
			}
		}
	}
	for _, f := range files {
		if listed[f] == 0 {
			t.Errorf("deploy/%s is not listed in deploy/kustomization.yaml's resources", f)
		}
	}
	for r, n := range listed {
		if n > 1 {
			t.Errorf("deploy/kustomization.yaml lists %s %d times", r, n)
		}
		if !slices.Contains(files, r) {
			t.Errorf("deploy/kustomization.yaml lists %s, which is not a YAML file of deploy/, deploy/crd/ or deploy/webhook/", r)
		}
	}
}

// TestDeployManifestsDryRun applies every object of the kustomization to a
// real apiserver with a server-side dry run: schema, validation and
// admission (Pod Security "restricted" included, whose violations on
// Deployments come back as warnings, which fail the test too) must accept
// each one.
func TestDeployManifestsDryRun(t *testing.T) {
	t.Parallel()
	k, ms := loadDeploy(t)
	env := startEnv(t)

	// The CRD and the Namespace for real first: a dry run cannot create a
	// type or a namespace that later objects need.
	if err := env.InstallCRDs(filepath.Join(deployDir, "crd")); err != nil {
		t.Fatal(err)
	}
	a := newApplier(t, env, k.Namespace)
	applyNamespaces(t, a, ms)

	kinds := map[string]int{}
	for _, m := range ms {
		warns, err := a.apply(t, m, true)
		if err != nil {
			t.Errorf("deploy/%v: refused by the apiserver (dry run): %v", m, err)
			continue
		}
		for _, w := range warns {
			t.Errorf("deploy/%v: the apiserver warns: %s", m, w)
		}
		kinds[m.obj.GetKind()]++
	}

	// The manifests must hold what the sample needs, not only valid YAML.
	want := map[string]int{
		"Namespace": 1, "CustomResourceDefinition": 1, "ServiceAccount": 1,
		"ClusterRole": 1, "ClusterRoleBinding": 1, "Role": 1, "RoleBinding": 1,
		"Deployment": 2, "PersistentVolumeClaim": 1, "Service": 2,
		"ValidatingAdmissionPolicy": 1, "ValidatingAdmissionPolicyBinding": 1,
		"ValidatingWebhookConfiguration": 1, "MutatingWebhookConfiguration": 1,
	}
	for kind, n := range want {
		if kinds[kind] != n {
			t.Errorf("accepted %d %s objects, want %d", kinds[kind], kind, n)
		}
	}
}

// ruleKey is one (group, resource, verb) a PolicyRule grants, on the
// object name when the rule names objects.
type ruleKey struct{ kind, group, resource, verb, name string }

// TestDeployRBACRulesAreTheNeededOnes reads rbac.yaml's roles and checks
// that they grant exactly what the controller needs: no wildcard, no
// nonResourceURLs, no verb beyond the list, resourceNames exactly where
// the controller writes named objects of its own.
func TestDeployRBACRulesAreTheNeededOnes(t *testing.T) {
	_, ms := loadDeploy(t)
	want := map[ruleKey]bool{}
	add := func(kind, group, resource string, verbs ...string) {
		name := ""
		if n, ok := strings.CutPrefix(verbs[0], "name="); ok {
			name, verbs = n, verbs[1:]
		}
		for _, v := range verbs {
			want[ruleKey{kind, group, resource, v, name}] = true
		}
	}
	// What the sample's code registers (the registry pkg/start prints):
	// the VirtualMachine controller (its cache, a live read before a
	// finalizer write, its handlers' writes of their object), its status
	// handlers and OnRemove handlers' finalizers; the apply set of its
	// children (their caches, server-side apply and pruning); the event
	// recorder; the Lease, by name but for its create (which names no
	// object); and, with --webhook-secret, the certificate's Secret (get
	// and update by name; its create, list and watch fall under the
	// ClusterRole's) and the CA bundle in the webhook configurations and
	// the CRD, by name. rbac.yaml is generated (make generate): this list
	// states the same needs independently of the registry.
	add("ClusterRole", "vm.rein.dev", "virtualmachines", "get", "list", "watch", "update", "patch")
	add("ClusterRole", "vm.rein.dev", "virtualmachines/status", "update", "patch")
	add("ClusterRole", "vm.rein.dev", "virtualmachines/finalizers", "update")
	add("ClusterRole", "events.k8s.io", "events", "create", "patch")
	add("ClusterRole", "", "configmaps", "list", "watch", "create", "patch", "delete")
	add("ClusterRole", "", "secrets", "list", "watch", "create", "patch", "delete")
	add("Role", "coordination.k8s.io", "leases", "create")
	add("Role", "coordination.k8s.io", "leases", "name=vmcontroller", "get", "list", "watch", "update")
	add("Role", "", "secrets", "name=vmcontroller-webhook-cert", "get", "update")
	add("ClusterRole", "admissionregistration.k8s.io", "validatingwebhookconfigurations", "name=vmcontroller", "get", "update")
	add("ClusterRole", "admissionregistration.k8s.io", "mutatingwebhookconfigurations", "name=vmcontroller", "get", "update")
	add("ClusterRole", "apiextensions.k8s.io", "customresourcedefinitions", "name=virtualmachines.vm.rein.dev", "get", "update")

	got := map[ruleKey]bool{}
	for _, m := range ms {
		kind := m.obj.GetKind()
		if kind != "ClusterRole" && kind != "Role" {
			continue
		}
		// A Role and a ClusterRole have the same rules field.
		var role rbacv1.ClusterRole
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(m.obj.Object, &role); err != nil {
			t.Fatalf("deploy/%v: %v", m, err)
		}
		rules := role.Rules
		if kind == "Role" && m.obj.GetNamespace() != "" && m.obj.GetNamespace() != "vm-system" {
			t.Errorf("deploy/%v: in namespace %s, want vm-system", m, m.obj.GetNamespace())
		}
		for i, r := range rules {
			if len(r.NonResourceURLs) > 0 {
				t.Errorf("deploy/%v rule %d: nonResourceURLs are not expected", m, i)
			}
			names := r.ResourceNames
			if len(names) == 0 {
				names = []string{""}
			}
			for _, g := range r.APIGroups {
				for _, res := range r.Resources {
					for _, v := range r.Verbs {
						if g == "*" || res == "*" || v == "*" {
							t.Errorf("deploy/%v rule %d: wildcard in %q %q %q", m, i, g, res, v)
						}
						for _, name := range names {
							got[ruleKey{kind, g, res, v, name}] = true
						}
					}
				}
			}
		}
	}
	for k := range got {
		if !want[k] {
			t.Errorf("a %s grants %s on %q (group %q, name %q), which the controller does not need", k.kind, k.verb, k.resource, k.group, k.name)
		}
	}
	for k := range want {
		if !got[k] {
			t.Errorf("no %s grants %s on %q (group %q, name %q), which the controller needs", k.kind, k.verb, k.resource, k.group, k.name)
		}
	}
}

// TestDeployRBACGrantsWhatTheControllerNeeds applies the Namespace, the
// ServiceAccount and the RBAC objects for real, then asks the apiserver's
// authorizer, as the controller's service account, what it may do: each
// verb it needs must be allowed, and a sample of what it does not need must
// be denied.
func TestDeployRBACGrantsWhatTheControllerNeeds(t *testing.T) {
	t.Parallel()
	k, ms := loadDeploy(t)
	env := startEnv(t)
	a := newApplier(t, env, k.Namespace)
	applyNamespaces(t, a, ms)
	for _, m := range ms {
		switch m.obj.GetKind() {
		case "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding":
			if _, err := a.apply(t, m, false); err != nil {
				t.Fatalf("apply deploy/%v: %v", m, err)
			}
		}
	}

	// A client-certificate user with a service account's name and groups is
	// what RBAC's ServiceAccount subjects match.
	sa, err := env.AddUser("system:serviceaccount:vm-system:vmcontroller",
		"system:serviceaccounts", "system:serviceaccounts:vm-system")
	if err != nil {
		t.Fatal(err)
	}
	cs, err := sa.Clientset()
	if err != nil {
		t.Fatal(err)
	}

	type check struct {
		ns, group, resource, sub, verb string
		name                           string
	}
	vm := func(ns, sub, verb string) check { return check{ns, "vm.rein.dev", "virtualmachines", sub, verb, ""} }
	lease := func(ns, verb string) check {
		return check{ns, "coordination.k8s.io", "leases", "", verb, "vmcontroller"}
	}
	core := func(ns, resource, verb string) check { return check{ns, "", resource, "", verb, ""} }
	allowed := []check{
		// In all namespaces (ns ""), as the informer does, and in one.
		vm("", "", "get"), vm("", "", "list"), vm("", "", "watch"),
		vm("tenant-a", "", "get"), vm("tenant-a", "", "update"), vm("tenant-a", "", "patch"),
		vm("tenant-a", "status", "update"), vm("tenant-a", "status", "patch"),
		vm("tenant-a", "finalizers", "update"),
		{"tenant-a", "events.k8s.io", "events", "", "create", ""}, {"tenant-b", "events.k8s.io", "events", "", "patch", ""},
		core("", "configmaps", "list"), core("", "secrets", "watch"),
		core("tenant-a", "configmaps", "create"), core("tenant-a", "secrets", "patch"), core("tenant-b", "secrets", "delete"),
		lease("vm-system", "get"), lease("vm-system", "list"), lease("vm-system", "watch"),
		{"vm-system", "coordination.k8s.io", "leases", "", "create", ""}, lease("vm-system", "update"),
		{"vm-system", "", "secrets", "", "get", "vmcontroller-webhook-cert"}, {"vm-system", "", "secrets", "", "update", "vmcontroller-webhook-cert"},
		{"", "admissionregistration.k8s.io", "validatingwebhookconfigurations", "", "update", "vmcontroller"},
		{"", "admissionregistration.k8s.io", "mutatingwebhookconfigurations", "", "get", "vmcontroller"},
		{"", "apiextensions.k8s.io", "customresourcedefinitions", "", "update", "virtualmachines.vm.rein.dev"},
	}
	denied := []check{
		vm("tenant-a", "", "create"), vm("tenant-a", "", "delete"), vm("", "", "deletecollection"),
		vm("tenant-a", "status", "create"), vm("tenant-a", "status", "get"),
		lease("default", "get"), lease("kube-system", "update"), lease("", "list"),
		lease("vm-system", "delete"), lease("vm-system", "patch"),
		{"vm-system", "coordination.k8s.io", "leases", "", "get", "another"}, {"vm-system", "coordination.k8s.io", "leases", "", "list", ""},
		core("vm-system", "secrets", "get"), core("tenant-a", "secrets", "update"),
		core("tenant-a", "configmaps", "update"), core("vm-system", "configmaps", "get"), core("", "secrets", "deletecollection"),
		{"tenant-a", "events.k8s.io", "events", "", "delete", ""}, core("", "pods", "list"),
		core("tenant-a", "events", "create"),
		{"vm-system", "", "secrets", "", "update", "another"}, {"tenant-a", "", "secrets", "", "get", "vmcontroller-webhook-cert"},
		{"", "admissionregistration.k8s.io", "validatingwebhookconfigurations", "", "update", "someone-elses"},
		{"", "admissionregistration.k8s.io", "mutatingwebhookconfigurations", "", "create", ""},
		{"", "apiextensions.k8s.io", "customresourcedefinitions", "", "update", "widgets.example.com"},
		{"", "apiextensions.k8s.io", "customresourcedefinitions", "", "list", ""},
	}
	describe := func(c check) string {
		res := c.resource
		if c.sub != "" {
			res += "/" + c.sub
		}
		if c.group != "" {
			res += "." + c.group
		}
		if c.name != "" {
			res += " " + c.name
		}
		where := "in all namespaces"
		if c.ns != "" {
			where = "in namespace " + c.ns
		}
		return fmt.Sprintf("%s %s %s", c.verb, res, where)
	}
	ask := func(c check) (bool, error) {
		review, err := cs.AuthorizationV1().SelfSubjectAccessReviews().Create(t.Context(), &authorizationv1.SelfSubjectAccessReview{
			Spec: authorizationv1.SelfSubjectAccessReviewSpec{ResourceAttributes: &authorizationv1.ResourceAttributes{
				Namespace: c.ns, Group: c.group, Resource: c.resource, Subresource: c.sub, Verb: c.verb, Name: c.name,
			}},
		}, metav1.CreateOptions{})
		if err != nil {
			return false, err
		}
		return review.Status.Allowed, nil
	}

	// The RBAC authorizer reads roles and bindings from informers: give it
	// a moment to see the new ones before an allowed check fails.
	deadline := time.Now().Add(10 * time.Second)
	for _, c := range allowed {
		for {
			ok, err := ask(c)
			if err != nil {
				t.Fatalf("SelfSubjectAccessReview for %s: %v", describe(c), err)
			}
			if ok {
				break
			}
			if time.Now().After(deadline) {
				t.Errorf("the controller's service account may not %s, which it needs", describe(c))
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	for _, c := range denied {
		ok, err := ask(c)
		if err != nil {
			t.Fatalf("SelfSubjectAccessReview for %s: %v", describe(c), err)
		}
		if ok {
			t.Errorf("the controller's service account may %s, which it does not need", describe(c))
		}
	}

	// The lease list and watch of pkg/leader, for real: with the field
	// selector it uses, in vm-system; and refused elsewhere.
	listAs(t, cs, "vm-system", true)
	listAs(t, cs, "default", false)
}

// listAs lists Leases in ns as cs, with pkg/leader's field selector, and
// checks the outcome.
func listAs(t *testing.T, cs kubernetes.Interface, ns string, wantOK bool) {
	t.Helper()
	_, err := cs.CoordinationV1().Leases(ns).List(t.Context(), metav1.ListOptions{FieldSelector: "metadata.name=vmcontroller"})
	switch {
	case wantOK && err != nil:
		t.Errorf("list leases in %s as the controller: %v", ns, err)
	case !wantOK && err == nil:
		t.Errorf("list leases in %s as the controller: allowed, want forbidden", ns)
	}
}

var _ rest.WarningHandler = (*warnings)(nil)

// TestDeployFencingPolicyIsRein's: fencing.yaml holds exactly the policy
// and binding pkg/leader defines for the sample's Lease, so that a change of
// the policy in Go cannot leave the deployment behind.
func TestDeployFencingPolicyIsReins(t *testing.T) {
	_, ms := loadDeploy(t)
	binding, err := leader.FencingPolicyBinding("vm-system", "vmcontroller")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]runtime.Object{
		"ValidatingAdmissionPolicy":        leader.FencingPolicy(),
		"ValidatingAdmissionPolicyBinding": binding,
	}
	for _, m := range ms {
		w, ok := want[m.obj.GetKind()]
		if !ok {
			continue
		}
		delete(want, m.obj.GetKind())
		got := reflect.New(reflect.TypeOf(w).Elem()).Interface().(runtime.Object)
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(m.obj.Object, got); err != nil {
			t.Fatalf("deploy/%v: %v", m, err)
		}
		if !equality.Semantic.DeepEqual(got, w) {
			t.Errorf("deploy/%v differs from pkg/leader's:\n got %+v\nwant %+v", m, got, w)
		}
	}
	for kind := range want {
		t.Errorf("deploy/ has no %s", kind)
	}
}
