package testenv_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/ptr"

	"github.com/rein-k8s/rein/internal/testkit/audit"
	"github.com/rein-k8s/rein/pkg/testenv"
)

// env is one control plane shared by the tests of this file that do not
// need one of their own.
var env *testenv.Env

func TestMain(m *testing.M) {
	if mode := os.Getenv(leakHelperEnv); mode != "" {
		// This binary, run again by TestStopEndsWhatATestLeftOpen: a
		// package with testenv.Main, as a user writes it.
		os.Exit(testenv.Main(m, leakHelperOptions(mode), &env))
	}
	var err error
	env, err = testenv.Start(testenv.Options{CRDDirs: []string{"testdata/crds"}, Audit: true})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Printf("testenv: control plane started in %v\n", env.StartDuration().Round(time.Millisecond))
	os.Exit(testenv.Finish(env, m.Run()))
}

var widgets = schema.GroupVersionResource{Group: "testenv.rein.dev", Version: "v1", Resource: "widgets"}

// TestLeaseAndCustomResourceRoundTrip creates, reads and updates a Lease and
// a CRD-backed object through the admin kubeconfig file, as a separate
// process would.
func TestLeaseAndCustomResourceRoundTrip(t *testing.T) {
	ctx := t.Context()
	cfg, err := clientcmd.BuildConfigFromFlags("", env.KubeconfigPath())
	if err != nil {
		t.Fatalf("load admin kubeconfig: %v", err)
	}
	cs := kubernetes.NewForConfigOrDie(cfg)

	leases := cs.CoordinationV1().Leases("default")
	created, err := leases.Create(ctx, &coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{Name: "roundtrip"},
		Spec:       coordinationv1.LeaseSpec{HolderIdentity: ptr.To("a"), LeaseDurationSeconds: ptr.To[int32](15)},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create lease: %v", err)
	}
	got, err := leases.Get(ctx, "roundtrip", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("get lease: %v", err)
	}
	if got.UID != created.UID || *got.Spec.HolderIdentity != "a" {
		t.Fatalf("read back lease %s holder %q, want %s holder a", got.UID, *got.Spec.HolderIdentity, created.UID)
	}
	got.Spec.HolderIdentity = ptr.To("b")
	updated, err := leases.Update(ctx, got, metav1.UpdateOptions{})
	if err != nil {
		t.Fatalf("update lease: %v", err)
	}
	if updated.ResourceVersion == got.ResourceVersion || *updated.Spec.HolderIdentity != "b" {
		t.Fatalf("update did not take: rv %s→%s holder %q", got.ResourceVersion, updated.ResourceVersion, *updated.Spec.HolderIdentity)
	}
	// A stale resourceVersion must be refused: optimistic concurrency is
	// what leader election rests on.
	if _, err := leases.Update(ctx, got, metav1.UpdateOptions{}); !apierrors.IsConflict(err) {
		t.Fatalf("update with stale resourceVersion: got %v, want a conflict", err)
	}

	dyn := dynamic.NewForConfigOrDie(cfg).Resource(widgets).Namespace("default")
	w := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "testenv.rein.dev/v1", "kind": "Widget",
		"metadata": map[string]any{"name": "w1"},
		"spec":     map[string]any{"size": int64(3)},
	}}
	if _, err := dyn.Create(ctx, w, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create widget: %v", err)
	}
	w, err = dyn.Get(ctx, "w1", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("get widget: %v", err)
	}
	if err := unstructured.SetNestedField(w.Object, int64(5), "spec", "size"); err != nil {
		t.Fatal(err)
	}
	if _, err := dyn.Update(ctx, w, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("update widget: %v", err)
	}
	w, err = dyn.Get(ctx, "w1", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("get widget: %v", err)
	}
	if size, _, _ := unstructured.NestedInt64(w.Object, "spec", "size"); size != 5 {
		t.Fatalf("widget size %d after update, want 5", size)
	}
	// The CRD's schema is enforced by the apiserver.
	bad := w.DeepCopy()
	bad.SetName("w-bad")
	bad.SetResourceVersion("")
	_ = unstructured.SetNestedField(bad.Object, int64(0), "spec", "size")
	if _, err := dyn.Create(ctx, bad, metav1.CreateOptions{}); !apierrors.IsInvalid(err) {
		t.Fatalf("create widget with size 0: got %v, want the schema's minimum to refuse it", err)
	}
}

// TestRBACIsEnforced shows that a user without permissions is refused (403)
// and that granting a Role lets exactly that write through.
func TestRBACIsEnforced(t *testing.T) {
	ctx := t.Context()
	cs := userClientset(t, "rbac-tester", "testers")
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "rbac-probe"}}
	_, err := cs.CoreV1().ConfigMaps("default").Create(ctx, cm, metav1.CreateOptions{})
	if !apierrors.IsForbidden(err) {
		t.Fatalf("create as a user without permissions: got %v, want 403 Forbidden", err)
	}
	if !strings.Contains(err.Error(), `"rbac-tester"`) {
		t.Fatalf("403 does not name the user: %v", err)
	}

	admin, err := env.Admin().Clientset()
	if err != nil {
		t.Fatal(err)
	}
	role := &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Name: "cm-writer"},
		Rules:      []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"configmaps"}, Verbs: []string{"create"}}},
	}
	if _, err := admin.RbacV1().Roles("default").Create(ctx, role, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	binding := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "cm-writer"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "cm-writer"},
		// Bound to the group, to show that groups reach the authorizer.
		Subjects: []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: "Group", Name: "testers"}},
	}
	if _, err := admin.RbacV1().RoleBindings("default").Create(ctx, binding, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// RBAC changes reach the authorizer through its informer: wait for it.
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err = cs.CoreV1().ConfigMaps("default").Create(ctx, cm, metav1.CreateOptions{})
		if err == nil || !apierrors.IsForbidden(err) || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("create after granting the role: %v", err)
	}
	// The grant is for create only.
	if err := cs.CoreV1().ConfigMaps("default").Delete(ctx, "rbac-probe", metav1.DeleteOptions{}); !apierrors.IsForbidden(err) {
		t.Fatalf("delete with a create-only role: got %v, want 403", err)
	}
}

// TestAuditLogRecordsWrites shows that the audit log names the user and
// verb of a write, once its response has been received.
func TestAuditLogRecordsWrites(t *testing.T) {
	ctx := t.Context()
	cs := userClientset(t, "audited", "system:masters")
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "audited"}}
	if _, err := cs.CoreV1().ConfigMaps("default").Create(ctx, cm, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	find := func(from int64) (found *audit.Event, next int64) {
		t.Helper()
		next, err := audit.Read(env, from, func(ev *audit.Event) {
			if ev.User.Username == "audited" && ev.Verb == "create" && ev.ObjectRef.Resource == "configmaps" && ev.ObjectRef.Name == "audited" {
				found = ev
			}
		})
		if err != nil {
			t.Fatal(err)
		}
		return found, next
	}
	ev, next := find(0)
	if ev == nil {
		t.Fatalf("no audit event for the create by user audited in %s", audit.Path(env))
	}
	if ev.Stage != "ResponseComplete" || ev.ObjectRef.Namespace != "default" || ev.ResponseStatus.Code != 201 ||
		ev.RequestReceived.IsZero() || ev.StageTimestamp.Before(ev.RequestReceived) {
		t.Fatalf("audit event of the create: %+v", ev)
	}
	// Reading on from the returned offset sees only newer events.
	if again, _ := find(next); again != nil {
		t.Fatalf("reading from offset %d saw the create again", next)
	}
	if _, err := audit.Read(env, 1<<40, func(*audit.Event) {}); err == nil || !strings.Contains(err.Error(), "fewer than the offset") {
		t.Fatalf("reading past the end: got %v, want an error naming the offset", err)
	}
}

// TestParallelControlPlanes starts two control planes at once and shows
// that they share neither ports nor state.
func TestParallelControlPlanes(t *testing.T) {
	if testing.Short() {
		t.Skip("starts two more control planes")
	}
	var (
		envs [2]*testenv.Env
		errs [2]error
		wg   sync.WaitGroup
	)
	for i := range envs {
		wg.Go(func() { envs[i], errs[i] = testenv.Start(testenv.Options{}) })
	}
	wg.Wait()
	for i, e := range envs {
		if errs[i] != nil {
			t.Fatalf("control plane %d: %v", i, errs[i])
		}
		t.Cleanup(func() {
			if err := e.Stop(); err != nil {
				t.Error(err)
			}
		})
	}
	a, b := envs[0], envs[1]
	if a.Config().Host == b.Config().Host || a.Dir() == b.Dir() {
		t.Fatalf("two control planes share %s / %s", a.Config().Host, a.Dir())
	}
	ctx := context.Background()
	csA := kubernetes.NewForConfigOrDie(a.Config())
	csB := kubernetes.NewForConfigOrDie(b.Config())
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "only-in-a"}}
	if _, err := csA.CoreV1().ConfigMaps("default").Create(ctx, cm, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := csB.CoreV1().ConfigMaps("default").Get(ctx, "only-in-a", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("object created in one control plane: the other answers %v, want NotFound", err)
	}
	// One stopping leaves the other serving.
	if err := a.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := csB.CoreV1().Namespaces().Get(ctx, "default", metav1.GetOptions{}); err != nil {
		t.Fatalf("second control plane after the first stopped: %v", err)
	}
}

func TestMissingBinariesSayWhatToDo(t *testing.T) {
	_, err := testenv.Start(testenv.Options{BinDir: t.TempDir()})
	if err == nil {
		t.Fatal("Start with an empty bin dir succeeded")
	}
	if !strings.Contains(err.Error(), "make testbin") || !strings.Contains(err.Error(), "kube-apiserver") {
		t.Fatalf("error does not say what is missing and what to run: %v", err)
	}
}

func TestAddUserTwice(t *testing.T) {
	u1, err := env.AddUser("twice", "g1")
	if err != nil {
		t.Fatal(err)
	}
	u2, err := env.AddUser("twice", "g1")
	if err != nil || u2 != u1 {
		t.Fatalf("same user again: %v, %p vs %p", err, u1, u2)
	}
	if _, err := env.AddUser("twice", "g2"); err == nil {
		t.Fatal("same user name with other groups was accepted")
	}
}

// userClientset is a clientset of a user the control plane knows by name,
// in the groups.
func userClientset(t *testing.T, name string, groups ...string) *kubernetes.Clientset {
	t.Helper()
	user, err := env.AddUser(name, groups...)
	if err != nil {
		t.Fatal(err)
	}
	cs, err := user.Clientset()
	if err != nil {
		t.Fatal(err)
	}
	return cs
}
