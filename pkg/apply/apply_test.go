package apply_test

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/utils/ptr"

	"github.com/rein-k8s/rein/internal/engine"
	"github.com/rein-k8s/rein/internal/testkit"
	"github.com/rein-k8s/rein/internal/testkit/audit"
	"github.com/rein-k8s/rein/internal/testkit/factorytest"
	"github.com/rein-k8s/rein/pkg/apply"
	"github.com/rein-k8s/rein/pkg/framework"
	"github.com/rein-k8s/rein/pkg/generic"
	"github.com/rein-k8s/rein/pkg/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) {
	os.Exit(testenv.Main(m, testenv.Options{Audit: true}, &env))
}

// exampleFactory is the examples' factory: one on the test control plane
// that caches namespace "default" (a program calls framework.NewFactory).
func exampleFactory() *framework.Factory { return factorytest.ExampleFactory(env.Config()) }

// syncCaches starts factory's caches and waits until they have synced,
// as pkg/start does in a program. The examples use it.
func syncCaches(ctx context.Context, factory *framework.Factory) error {
	return factorytest.StartCaches(ctx, factory)
}

// userAgent marks the applier's requests in the audit log.
const userAgent = "rein-apply-test"

type fixture struct {
	t     *testing.T
	ns    string
	admin kubernetes.Interface
	f     *framework.Factory
	a     *apply.Applier
	owner *corev1.ServiceAccount
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	admin := testkit.Admin(t, env)
	ctx := t.Context()
	ns := testkit.NewNamespace(t, admin, "apply-")
	s := factorytest.Scheme(t, clientgoscheme.AddToScheme)
	cfg := env.Config()
	cfg.UserAgent = userAgent
	f, err := framework.NewFactory(cfg, s, framework.Options{})
	if err != nil {
		t.Fatal(err)
	}
	a, err := apply.New(f)
	if err != nil {
		t.Fatal(err)
	}
	owner, err := admin.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "owner"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{t: t, ns: ns, admin: admin, f: f, a: a, owner: owner}
}

// start runs the factory's caches (after the sets were made).
func (x *fixture) start() {
	x.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	if err := engine.OpsOf(x.f).StartCaches(ctx); err != nil {
		cancel()
		x.t.Fatal(err)
	}
	if err := engine.OpsOf(x.f).WaitForCacheSync(ctx); err != nil {
		cancel()
		x.t.Fatal(err)
	}
	x.t.Cleanup(func() { cancel(); engine.OpsOf(x.f).Caches().Wait() })
}

func (x *fixture) set(name string, opts ...apply.Option) *apply.Set {
	x.t.Helper()
	s, err := x.a.Set(name, []generic.Resource{factorytest.ConfigMaps, factorytest.Services}, opts...)
	if err != nil {
		x.t.Fatal(err)
	}
	return s
}

func configMap(name string, data map[string]string) *corev1.ConfigMap {
	return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name}, Data: data}
}

func service(name string, port int32) *corev1.Service {
	return &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: corev1.ServiceSpec{
		Selector: map[string]string{"app": name},
		Ports:    []corev1.ServicePort{{Name: "http", Port: port, TargetPort: intstr.FromInt32(8080)}},
	}}
}

// settle waits until the caches show what was applied: Plan finds
// nothing to do.
func (x *fixture) settle(s *apply.Set, desired ...runtime.Object) {
	x.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		r, err := s.Plan(x.t.Context(), x.owner, desired...)
		if err != nil {
			x.t.Fatal(err)
		}
		if !r.Changed() {
			return
		}
		if time.Now().After(deadline) {
			x.t.Fatalf("the caches never matched: %+v", r.Why)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (x *fixture) mustApply(s *apply.Set, desired ...runtime.Object) *apply.Result {
	x.t.Helper()
	r, err := s.Apply(x.t.Context(), x.owner, desired...)
	if err != nil {
		x.t.Fatal(err)
	}
	return r
}

// mutatingRequests counts the applier's writes in the audit log from
// offset on, and returns the new offset.
func mutatingRequests(t *testing.T, offset int64) (int, int64) {
	t.Helper()
	n := 0
	next, err := audit.Read(env, offset, func(ev *audit.Event) {
		if strings.HasPrefix(ev.UserAgent, userAgent) {
			switch ev.Verb {
			case "create", "update", "patch", "delete", "deletecollection":
				n++
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	return n, next
}

func auditEnd(t *testing.T) int64 {
	t.Helper()
	_, end := mutatingRequests(t, 0)
	return end
}

func TestApplyKeepsChildrenAsDeclared(t *testing.T) {
	x := newFixture(t)
	s := x.set("children")
	x.start()
	ctx := t.Context()
	cms := x.admin.CoreV1().ConfigMaps(x.ns)

	// Create.
	desired := []runtime.Object{configMap("settings", map[string]string{"k": "v", "extra": "x"}), service("console", 80)}
	r := x.mustApply(s, desired...)
	if len(r.Created) != 2 {
		t.Fatalf("first apply: %+v", r)
	}
	// At once again, before the cache has (likely) seen the creations: the
	// set remembers what it applied, and sends nothing.
	if r := x.mustApply(s, desired...); r.Changed() {
		t.Fatalf("an apply right after the creating one: %+v", r.Why)
	}
	got, err := cms.Get(ctx, "settings", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got.Labels[apply.OwnerLabel] != string(x.owner.UID) || got.Labels[apply.SetLabel] != "children" ||
		len(got.OwnerReferences) != 1 || got.OwnerReferences[0].UID != x.owner.UID || !*got.OwnerReferences[0].Controller {
		t.Fatalf("child metadata: labels %v, owners %+v", got.Labels, got.OwnerReferences)
	}

	// Steady state: nothing is sent, by the apiserver's own audit log.
	x.settle(s, desired...)
	offset := auditEnd(t)
	for range 3 {
		if r := x.mustApply(s, desired...); r.Changed() || len(r.Unchanged) != 2 {
			t.Fatalf("unchanged set: %+v", r)
		}
	}
	if n, _ := mutatingRequests(t, offset); n != 0 {
		t.Fatalf("applying an unchanged set 3 times sent %d mutating requests, want 0", n)
	}

	// Update, and a field dropped from the desired object disappears. An
	// Apply right after, before the cache has caught up, sends nothing:
	// the set knows what it applied.
	desired[0] = configMap("settings", map[string]string{"k": "v2"})
	offset = auditEnd(t)
	if r := x.mustApply(s, desired...); len(r.Updated) != 1 {
		t.Fatalf("update: %+v", r)
	}
	if r := x.mustApply(s, desired...); r.Changed() {
		t.Fatalf("the same set again at once: %+v", r)
	}
	if n, _ := mutatingRequests(t, offset); n != 1 {
		t.Fatalf("an update and an immediate repeat sent %d mutating requests, want 1", n)
	}
	if got, err = cms.Get(ctx, "settings", metav1.GetOptions{}); err != nil || got.Data["k"] != "v2" || got.Data["extra"] != "" {
		t.Fatalf("after the update: %v %v, want k=v2 and no extra", got.Data, err)
	}
	x.settle(s, desired...)

	// A hand edit is reverted.
	got.Data["k"] = "by hand"
	if _, err := cms.Update(ctx, got, metav1.UpdateOptions{FieldManager: "kubectl-edit"}); err != nil {
		t.Fatal(err)
	}
	r = x.awaitDrift(s, desired...)
	if len(r.Updated) != 1 || !strings.Contains(r.Why[r.Updated[0]], "drifted at .data.k") {
		t.Fatalf("hand edit: %+v", r)
	}
	if got, err = cms.Get(ctx, "settings", metav1.GetOptions{}); err != nil || got.Data["k"] != "v2" {
		t.Fatalf("after reverting a hand edit: %v %v", got.Data, err)
	}
	x.settle(s, desired...)

	// A hand delete is reverted.
	if err := cms.Delete(ctx, "settings", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	r = x.awaitDrift(s, desired...)
	if len(r.Created) != 1 {
		t.Fatalf("hand delete: %+v", r)
	}
	x.settle(s, desired...)

	// Prune one object, then the rest.
	if r := x.mustApply(s, desired[0]); len(r.Deleted) != 1 || r.Deleted[0].Name != "console" {
		t.Fatalf("prune the service: %+v", r)
	}
	if _, err := x.admin.CoreV1().Services(x.ns).Get(ctx, "console", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("the pruned service: %v", err)
	}
	x.settle(s, desired[0])
	if r, err := s.Delete(ctx, x.owner); err != nil || len(r.Deleted) != 1 {
		t.Fatalf("owner gone: %+v %v", r, err)
	}
	if _, err := cms.Get(ctx, "settings", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("the owner's last child: %v", err)
	}
}

// awaitDrift applies until the cache has seen the hand change and Apply
// acted on it.
func (x *fixture) awaitDrift(s *apply.Set, desired ...runtime.Object) *apply.Result {
	x.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		r := x.mustApply(s, desired...)
		if r.Changed() {
			return r
		}
		if time.Now().After(deadline) {
			x.t.Fatal("the change never reached the cache")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestConflictNamesTheOtherManager(t *testing.T) {
	x := newFixture(t)
	s := x.set("strict", apply.NoForce())
	x.start()
	ctx := t.Context()
	desired := configMap("shared", map[string]string{"k": "mine"})
	x.mustApply(s, desired)
	x.settle(s, desired)
	cms := x.admin.CoreV1().ConfigMaps(x.ns)
	got, err := cms.Get(ctx, "shared", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	got.Data["k"] = "theirs"
	if _, err := cms.Update(ctx, got, metav1.UpdateOptions{FieldManager: "someone-else"}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		_, err := s.Apply(ctx, x.owner, desired)
		if err != nil {
			for _, want := range []string{"ConfigMap " + x.ns + "/shared", "rein-apply/strict", "someone-else", ".data.k"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("the conflict error does not name %q: %v", want, err)
				}
			}
			if !apierrors.IsConflict(err) {
				t.Errorf("the error does not wrap the apiserver's conflict: %v", err)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("no conflict reported")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestMistakesAreNamed(t *testing.T) {
	x := newFixture(t)
	s := x.set("kinds")
	if _, err := x.a.Set("kinds", []generic.Resource{factorytest.ConfigMaps}); err == nil {
		t.Error("two sets with one name")
	}
	if _, err := x.a.Set("Not_A_Label", []generic.Resource{factorytest.ConfigMaps}); err == nil {
		t.Error("a set name that is no label value")
	}
	if _, err := x.a.Set("none", nil); err == nil {
		t.Error("a set without kinds")
	}
	x.start()
	ctx := t.Context()
	_, err := s.Apply(ctx, x.owner, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "s"}})
	if err == nil || !strings.Contains(err.Error(), `set "kinds" holds no /v1, Kind=Secret`) {
		t.Errorf("a kind outside the set: %v", err)
	}
	if _, err := s.Apply(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "unread"}}, configMap("c", nil)); err == nil || !strings.Contains(err.Error(), "no UID") {
		t.Errorf("an owner never read: %v", err)
	}
	if _, err := s.Apply(ctx, x.owner, configMap("twice", nil), configMap("twice", nil)); err == nil || !strings.Contains(err.Error(), "desired twice") {
		t.Errorf("one child twice: %v", err)
	}
}

// TestSecretStringData: a Secret declared with stringData (write-only: the
// apiserver stores it in data) settles: once applied, the next applies
// send nothing, and a changed value is applied.
func TestSecretStringData(t *testing.T) {
	x := newFixture(t)
	s, err := x.a.Set("secrets", []generic.Resource{factorytest.Secrets})
	if err != nil {
		t.Fatal(err)
	}
	x.start()
	secret := func(v string) *corev1.Secret {
		return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "creds"}, StringData: map[string]string{"password": v}}
	}
	x.mustApply(s, secret("one"))
	x.settle(s, secret("one"))
	got, err := x.admin.CoreV1().Secrets(x.ns).Get(t.Context(), "creds", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if string(got.Data["password"]) != "one" {
		t.Fatalf("data %v, want password=one", got.Data)
	}
	offset := auditEnd(t)
	if r := x.mustApply(s, secret("one")); r.Changed() {
		t.Fatalf("an unchanged stringData Secret is applied again: %+v", r.Why)
	}
	if n, _ := mutatingRequests(t, offset); n != 0 {
		t.Fatalf("%d mutating requests for an unchanged Secret, want 0", n)
	}
	if r := x.mustApply(s, secret("two")); len(r.Updated) != 1 {
		t.Fatalf("a changed stringData value: %+v", r)
	}
	x.settle(s, secret("two"))
}

// TestPruneRightAfterCreate: a child created and no longer desired at
// once, before the cache (likely) shows it, is still pruned.
func TestPruneRightAfterCreate(t *testing.T) {
	x := newFixture(t)
	s := x.set("quick")
	x.start()
	var keep []runtime.Object
	for i := range 5 {
		keep = append(keep, configMap(fmt.Sprintf("keep-%d", i), nil))
		drop := configMap(fmt.Sprintf("drop-%d", i), nil)
		if r := x.mustApply(s, append(slices.Clone(keep), drop)...); len(r.Created) != 2 || len(r.Deleted) != 0 {
			t.Fatalf("round %d: %+v", i, r)
		}
		r := x.mustApply(s, keep...)
		if len(r.Deleted) != 1 || r.Deleted[0].Name != drop.Name {
			t.Fatalf("round %d: dropping %s right after its creation: %+v", i, drop.Name, r)
		}
		if _, err := x.admin.CoreV1().ConfigMaps(x.ns).Get(t.Context(), drop.Name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Fatalf("round %d: %s after its prune: %v", i, drop.Name, err)
		}
	}
}

// TestOnlyItsOwnChildren: a Set does not take over an object it did not
// make (no owner label, no controller reference to the owner) nor one
// another set of the same owner declares, and says so; it adopts one the
// owner controls already (made by the owner's controller before it used a
// Set).
func TestOnlyItsOwnChildren(t *testing.T) {
	x := newFixture(t)
	s := x.set("mine")
	other := x.set("theirs")
	x.start()
	ctx := t.Context()
	cms := x.admin.CoreV1().ConfigMaps(x.ns)
	cached := func(name string) {
		t.Helper()
		informer, err := engine.OpsOf(x.f).Caches().ForResource(factorytest.ConfigMaps)
		if err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(10 * time.Second)
		for {
			if _, ok, _ := informer.GetIndexer().GetByKey(x.ns + "/" + name); ok {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s never reached the cache", name)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}

	handmade, err := cms.Create(ctx, configMap("handmade", map[string]string{"by": "hand"}), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cached("handmade")
	_, err = s.Apply(ctx, x.owner, configMap("handmade", map[string]string{"by": "set"}))
	if err == nil || !strings.Contains(err.Error(), "is not a child of this owner") {
		t.Fatalf("applying over a handmade object: %v", err)
	}
	if got, _ := cms.Get(ctx, "handmade", metav1.GetOptions{}); got.ResourceVersion != handmade.ResourceVersion {
		t.Error("the handmade object was written")
	}

	legacy := configMap("legacy", map[string]string{"v": "1"})
	legacy.OwnerReferences = []metav1.OwnerReference{{APIVersion: "v1", Kind: "ServiceAccount", Name: x.owner.Name, UID: x.owner.UID, Controller: ptr.To(true)}}
	if _, err := cms.Create(ctx, legacy, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	cached("legacy")
	if r := x.mustApply(s, configMap("legacy", map[string]string{"v": "2"})); len(r.Updated) != 1 {
		t.Fatalf("adopting an object the owner controls: %+v", r)
	}

	x.mustApply(other, configMap("shared", nil))
	cached("shared")
	if _, err := s.Apply(ctx, x.owner, configMap("shared", nil)); err == nil || !strings.Contains(err.Error(), `set "theirs" of the same owner declares it too`) {
		t.Fatalf("two sets of one owner declaring one object: %v", err)
	}
}

// TestMarksAreSwept: what a set remembers of its applies (needed only
// until the cache shows them) is dropped once the cache has caught up, so
// it does not grow with every child ever applied.
func TestMarksAreSwept(t *testing.T) {
	defer apply.SetSweepFloor(0)()
	x := newFixture(t)
	s := x.set("swept")
	x.start()
	informer, err := engine.OpsOf(x.f).Caches().ForResource(factorytest.ConfigMaps)
	if err != nil {
		t.Fatal(err)
	}
	var desired []runtime.Object
	for i := range 5 {
		desired = append(desired, configMap(fmt.Sprintf("first-%d", i), nil))
	}
	x.mustApply(s, desired...)
	deadline := time.Now().Add(10 * time.Second)
	for i := 0; i < 5; {
		if _, ok, _ := informer.GetIndexer().GetByKey(fmt.Sprintf("%s/first-%d", x.ns, i)); ok {
			i++
			continue
		}
		if time.Now().After(deadline) {
			t.Fatal("the first children never reached the cache")
		}
		time.Sleep(10 * time.Millisecond)
	}
	for i := range 10 {
		desired = append(desired, configMap(fmt.Sprintf("second-%d", i), nil))
	}
	x.mustApply(s, desired...)
	if n := apply.Marks(s); n >= 15 {
		t.Errorf("the set remembers %d applies, want the 5 the cache shows dropped", n)
	}
}
