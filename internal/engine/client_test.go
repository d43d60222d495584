package engine_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"

	"github.com/rein-k8s/rein/internal/engine"
	testapi "github.com/rein-k8s/rein/internal/testapi/v1"
	"github.com/rein-k8s/rein/internal/testkit/factorytest"
)

// contentTypes records the Content-Type of every response, by path.
type contentTypes struct {
	mu   sync.Mutex
	seen map[string][]string
	next http.RoundTripper
}

func (c *contentTypes) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := c.next.RoundTrip(req)
	if err == nil {
		c.mu.Lock()
		c.seen[req.Method+" "+req.URL.Path] = append(c.seen[req.Method+" "+req.URL.Path], resp.Header.Get("Content-Type"))
		c.mu.Unlock()
	}
	return resp, err
}

func (c *contentTypes) of(key string) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.seen[key]
}

func recordingConfig(base *rest.Config) (*rest.Config, *contentTypes) {
	rec := &contentTypes{seen: map[string][]string{}}
	cfg := rest.CopyConfig(base)
	cfg.Wrap(func(rt http.RoundTripper) http.RoundTripper { rec.next = rt; return rec })
	return cfg, rec
}

// Built-in kinds go over the wire as protobuf, CRD kinds as JSON, and a
// content type set in the rest.Config wins.
func TestWireFormatPerKind(t *testing.T) {
	ctx := t.Context()
	ns := newNamespace(t)
	cfg, rec := recordingConfig(env.Config())
	clients := newClientFactory(t, cfg)
	cmClient := resourceClient(t, clients, factorytest.ConfigMaps)
	var cm corev1.ConfigMap
	in := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "wire"}, Data: map[string]string{"k": "v"}}
	if err := cmClient.Create(ctx, ns, in, metav1.CreateOptions{}, &cm); err != nil {
		t.Fatal(err)
	}
	if err := cmClient.Patch(ctx, ns, "wire", types.MergePatchType, []byte(`{"data":{"k":"w"}}`), metav1.PatchOptions{}, &cm); err != nil {
		t.Fatal(err)
	}
	if cm.Data["k"] != "w" || cm.UID == "" {
		t.Fatalf("patched ConfigMap decoded wrong: %+v", cm)
	}
	var list corev1.ConfigMapList
	if err := cmClient.List(ctx, ns, metav1.ListOptions{}, &list); err != nil || len(list.Items) != 1 {
		t.Fatalf("list: %v, %d items", err, len(list.Items))
	}
	// An error body (a Status) decodes from protobuf too.
	var missing corev1.ConfigMap
	if err := cmClient.Get(ctx, ns, "missing", metav1.GetOptions{}, &missing); err == nil || err.Error() != `configmaps "missing" not found` {
		t.Fatalf("get missing: %v", err)
	}
	cmPath := "/api/v1/namespaces/" + ns + "/configmaps"
	for _, key := range []string{"POST " + cmPath, "PATCH " + cmPath + "/wire", "GET " + cmPath, "GET " + cmPath + "/missing"} {
		got := rec.of(key)
		if len(got) == 0 || got[0] != "application/vnd.kubernetes.protobuf" {
			t.Errorf("%s: response content types %v, want protobuf", key, got)
		}
	}

	widgetClient := resourceClient(t, clients, factorytest.Widgets)
	var w testapi.Widget
	if err := widgetClient.Create(ctx, ns, &testapi.Widget{ObjectMeta: metav1.ObjectMeta{Name: "wire"}, Spec: testapi.WidgetSpec{Size: 1}}, metav1.CreateOptions{}, &w); err != nil {
		t.Fatal(err)
	}
	widgetKey := "POST /apis/" + testapi.SchemeGroupVersion.Group + "/v1/namespaces/" + ns + "/widgets"
	if got := rec.of(widgetKey); len(got) == 0 || got[0] != "application/json" {
		t.Errorf("%s: response content types %v, want JSON", widgetKey, got)
	}

	// The caller's choice in the rest.Config is kept.
	jsonCfg, jsonRec := recordingConfig(env.Config())
	jsonCfg.ContentType = "application/json"
	jsonClients := newClientFactory(t, jsonCfg)
	jsonCM := resourceClient(t, jsonClients, factorytest.ConfigMaps)
	if err := jsonCM.Get(ctx, ns, "wire", metav1.GetOptions{}, &cm); err != nil {
		t.Fatal(err)
	}
	if got := jsonRec.of("GET " + cmPath + "/wire"); len(got) == 0 || got[0] != "application/json" {
		t.Errorf("with ContentType set to JSON: response content types %v, want JSON", got)
	}
}

// Cached objects come without managedFields unless asked for; a handler
// that updates its copy leaves the server's managedFields in place.
func TestManagedFieldsDroppedFromCache(t *testing.T) {
	for _, keep := range []bool{false, true} {
		t.Run(map[bool]string{false: "default", true: "KeepManagedFields"}[keep], func(t *testing.T) {
			ns := newNamespace(t)
			f := newFactory(t, ns, engine.Options{KeepManagedFields: keep})
			client, err := engine.OpsOf(f).Clients().ForResource(factorytest.ConfigMaps)
			if err != nil {
				t.Fatal(err)
			}
			seenFields := make(chan int, 4)
			controller(t, f, factorytest.ConfigMaps).AddHandler(t.Context(), "label", func(ctx context.Context, key string, obj runtime.Object) (runtime.Object, error) {
				cm, _ := obj.(*corev1.ConfigMap)
				if cm == nil || cm.Labels["handled"] == "yes" {
					return nil, nil
				}
				seenFields <- len(cm.ManagedFields)
				if cm.Labels == nil {
					cm.Labels = map[string]string{}
				}
				cm.Labels["handled"] = "yes"
				var out corev1.ConfigMap
				return &out, client.Update(t.Context(), ns, cm.Name, "", cm, metav1.UpdateOptions{FieldManager: "handler"}, &out)
			})
			run(t, f)
			createConfigMap(t, ns, "fields", map[string]string{"v": "1"})
			n := receive(t, seenFields, 10*time.Second, "handler call")
			if keep && n == 0 {
				t.Fatal("KeepManagedFields: the handler's object has no managedFields")
			}
			if !keep && n != 0 {
				t.Fatalf("default: the handler's object has %d managedFields entries, want none", n)
			}
			var managers []string
			eventually(t, 10*time.Second, "the handler's update", func() bool {
				cm, err := adminClient(t).CoreV1().ConfigMaps(ns).Get(t.Context(), "fields", metav1.GetOptions{})
				if err != nil || cm.Labels["handled"] != "yes" {
					return false
				}
				managers = managers[:0]
				for _, m := range cm.ManagedFields {
					managers = append(managers, m.Manager)
				}
				return true
			})
			// The creator's entry survives the update; the handler's is added.
			if len(managers) != 2 || managers[1] != "handler" {
				t.Fatalf("managers on the server after the update: %v, want the creator's and handler", managers)
			}
		})
	}
}

// TestWithImpersonation: clients of an impersonating factory act as the
// user named (its RBAC applies), and still pass the original factory's
// write guard.
func TestWithImpersonation(t *testing.T) {
	ns := newNamespace(t)
	f := newFactory(t, ns, engine.Options{})
	if _, err := engine.OpsOf(f).Clients().WithImpersonation(rest.ImpersonationConfig{}); err == nil {
		t.Fatal("impersonating nobody")
	}
	as, err := engine.OpsOf(f).Clients().WithImpersonation(rest.ImpersonationConfig{UserName: "nobody-impersonated"})
	if err != nil {
		t.Fatal(err)
	}
	client := resourceClient(t, as, factorytest.ConfigMaps)
	err = client.Create(t.Context(), ns, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "as-nobody"}}, metav1.CreateOptions{}, &corev1.ConfigMap{})
	if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), "nobody-impersonated") {
		t.Fatalf("a write as a user without RBAC: %v, want 403 naming the user", err)
	}
	fenced := errors.New("fenced")
	engine.OpsOf(f).GuardWrites(holdFunc(func() (time.Time, error) { return time.Time{}, fenced }))
	err = client.Create(t.Context(), ns, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "fenced"}}, metav1.CreateOptions{}, &corev1.ConfigMap{})
	if !errors.Is(err, fenced) {
		t.Fatalf("an impersonated write with the original's fence closed: %v", err)
	}
}

func newClientFactory(t *testing.T, cfg *rest.Config) *engine.ClientFactory {
	t.Helper()
	clients, err := engine.NewClientFactory(cfg, newScheme(t))
	if err != nil {
		t.Fatal(err)
	}
	return clients
}

func resourceClient(t *testing.T, clients *engine.ClientFactory, res engine.Resource) engine.ResourceClient {
	t.Helper()
	c, err := clients.ForResource(res)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
