package webhook

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

var configMapKind = metav1.GroupVersionKind{Version: "v1", Kind: "ConfigMap"}

func configMapRequest(t *testing.T, op admissionv1.Operation, name string, old, obj any) *admissionv1.AdmissionRequest {
	req := &admissionv1.AdmissionRequest{Kind: configMapKind, Operation: op, Namespace: "ns", Name: name}
	if old != nil {
		req.OldObject = runtime.RawExtension{Raw: mustJSON(t, old)}
	}
	if obj != nil {
		req.Object = runtime.RawExtension{Raw: mustJSON(t, obj)}
	}
	return req
}

func configMap(name string, data map[string]string) *corev1.ConfigMap {
	return &corev1.ConfigMap{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"}, ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns"}, Data: data}
}

// TestValidatingWebhook: create, update and delete reach the function with
// the right old and new objects; an error denies with its message (403),
// an API status error keeps its code and causes, warnings come back either
// way.
func TestValidatingWebhook(t *testing.T) {
	type call struct{ old, obj string }
	calls := make(chan call, 10)
	hook, ts := serveHook(t, func(s *Server) (Hook, error) {
		return Validating(s, coreScheme(t), func(ctx context.Context, old, obj *corev1.ConfigMap) (Warnings, error) {
			req, ok := RequestFrom(ctx)
			if !ok {
				return nil, errors.New("no request in the context")
			}
			c := call{}
			if old != nil {
				c.old = old.Name + "=" + old.Data["size"]
			}
			if obj != nil {
				c.obj = obj.Name + "=" + obj.Data["size"]
			}
			calls <- c
			switch {
			case obj != nil && obj.Data["size"] == "huge":
				return Warnings{"sizes are small, medium or large"}, errors.New("size huge is not offered")
			case obj != nil && obj.Data["size"] == "":
				return nil, apierrors.NewInvalid(schema.GroupKind{Kind: "ConfigMap"}, obj.Name, field.ErrorList{field.Required(field.NewPath("data", "size"), "a size is needed")})
			case req.Operation == admissionv1.Delete && old.Data["size"] == "large":
				return nil, errors.New("large ones are kept")
			}
			return Warnings{"ok: " + string(req.Operation)}, nil
		})
	})
	if hook.Path != "/validate-core-v1-configmap" || hook.Mutating || hook.Timeout != defaultTimeout {
		t.Errorf("hook %+v, want path /validate-core-v1-configmap, validating, timeout %v", hook, defaultTimeout)
	}

	resp := ts.review(t, hook.Path, configMapRequest(t, admissionv1.Create, "a", nil, configMap("a", map[string]string{"size": "small"})))
	if !resp.Allowed || !reflect.DeepEqual(resp.Warnings, []string{"ok: CREATE"}) {
		t.Errorf("create small: allowed %v, warnings %q; want allowed with the warning", resp.Allowed, resp.Warnings)
	}
	if c := <-calls; c != (call{"", "a=small"}) {
		t.Errorf("create: called with %+v", c)
	}

	resp = ts.review(t, hook.Path, configMapRequest(t, admissionv1.Update, "a", configMap("a", map[string]string{"size": "small"}), configMap("a", map[string]string{"size": "huge"})))
	if resp.Allowed || resp.Result == nil || resp.Result.Code != http.StatusForbidden || resp.Result.Message != "size huge is not offered" {
		t.Errorf("update to huge: %+v, want denied 403 with the handler's message", resp.Result)
	}
	if !reflect.DeepEqual(resp.Warnings, []string{"sizes are small, medium or large"}) {
		t.Errorf("update to huge: warnings %q, want the handler's", resp.Warnings)
	}
	if c := <-calls; c != (call{"a=small", "a=huge"}) {
		t.Errorf("update: called with %+v", c)
	}

	resp = ts.review(t, hook.Path, configMapRequest(t, admissionv1.Create, "b", nil, configMap("b", nil)))
	<-calls
	if resp.Allowed || resp.Result.Code != http.StatusUnprocessableEntity || resp.Result.Details == nil || len(resp.Result.Details.Causes) != 1 || resp.Result.Details.Causes[0].Field != "data.size" {
		t.Errorf("create without size: %+v, want 422 with the cause data.size", resp.Result)
	}

	resp = ts.review(t, hook.Path, configMapRequest(t, admissionv1.Delete, "c", configMap("c", map[string]string{"size": "large"}), nil))
	if resp.Allowed || !strings.Contains(resp.Result.Message, "large ones are kept") {
		t.Errorf("delete large: %+v, want denied", resp.Result)
	}
	if c := <-calls; c != (call{"c=large", ""}) {
		t.Errorf("delete: called with %+v", c)
	}
	if got := ts.count(t, hook.Path, resultAllowed); got != 1 {
		t.Errorf("allowed counted %v, want 1", got)
	}
	if got := ts.count(t, hook.Path, resultDenied); got != 3 {
		t.Errorf("denied counted %v, want 3", got)
	}
}

// TestMutatingWebhookPatch: the answer is a JSON patch that, applied to
// the object the apiserver sent, gives the defaulted object, and leaves
// fields the Go type does not know as they were.
func TestMutatingWebhookPatch(t *testing.T) {
	hook, ts := serveHook(t, func(s *Server) (Hook, error) {
		return Mutating(s, coreScheme(t), func(ctx context.Context, cm *corev1.ConfigMap) error {
			if cm.Data == nil {
				cm.Data = map[string]string{}
			}
			if cm.Data["size"] == "" {
				cm.Data["size"] = "medium"
			}
			if cm.Labels == nil {
				cm.Labels = map[string]string{}
			}
			cm.Labels["defaulted/by"] = "rein" // a key that needs escaping in a JSON pointer
			delete(cm.Annotations, "remove-me")
			return nil
		})
	})
	if hook.Path != "/mutate-core-v1-configmap" || !hook.Mutating {
		t.Errorf("hook %+v", hook)
	}
	raw := []byte(`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"a","namespace":"ns","annotations":{"keep":"1","remove-me":"x"}},"data":{"other":"1"},"futureField":{"kept":true}}`)
	req := &admissionv1.AdmissionRequest{Kind: configMapKind, Operation: admissionv1.Create, Namespace: "ns", Name: "a", Object: runtime.RawExtension{Raw: raw}}
	resp := ts.review(t, hook.Path, req)
	if !resp.Allowed || resp.PatchType == nil || *resp.PatchType != admissionv1.PatchTypeJSONPatch {
		t.Fatalf("response %+v, want allowed with a JSON patch", resp)
	}
	var ops []patchOp
	if err := json.Unmarshal(resp.Patch, &ops); err != nil {
		t.Fatal(err)
	}
	got := applyPatch(t, raw, ops)
	want := map[string]any{}
	if err := json.Unmarshal([]byte(`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"a","namespace":"ns","annotations":{"keep":"1"},"labels":{"defaulted/by":"rein"}},"data":{"other":"1","size":"medium"},"futureField":{"kept":true}}`), &want); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("patch %s applied gives\n%s\nwant\n%s", resp.Patch, mustJSON(t, got), mustJSON(t, want))
	}

	// Nothing to default: no patch at all.
	raw = []byte(`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"b","namespace":"ns","labels":{"defaulted/by":"rein"}},"data":{"size":"large"}}`)
	resp = ts.review(t, hook.Path, &admissionv1.AdmissionRequest{Kind: configMapKind, Operation: admissionv1.Update, Namespace: "ns", Name: "b", Object: runtime.RawExtension{Raw: raw}, OldObject: runtime.RawExtension{Raw: raw}})
	if !resp.Allowed || resp.Patch != nil || resp.PatchType != nil {
		t.Errorf("an object with its defaults: %+v, want allowed without a patch", resp)
	}
}

// applyPatch applies add, remove and replace operations on object members,
// which is what jsonPatch emits.
func applyPatch(t *testing.T, doc []byte, ops []patchOp) map[string]any {
	t.Helper()
	var root any
	if err := json.Unmarshal(doc, &root); err != nil {
		t.Fatal(err)
	}
	for _, op := range ops {
		tokens := strings.Split(op.Path, "/")[1:]
		parent := root.(map[string]any)
		for _, tok := range tokens[:len(tokens)-1] {
			next, ok := parent[unescapePointer(tok)].(map[string]any)
			if !ok {
				t.Fatalf("%s %s: no object at %s", op.Op, op.Path, tok)
			}
			parent = next
		}
		last := unescapePointer(tokens[len(tokens)-1])
		_, exists := parent[last]
		switch op.Op {
		case "add":
			parent[last] = op.Value
		case "replace":
			if !exists {
				t.Fatalf("replace %s: nothing there", op.Path)
			}
			parent[last] = op.Value
		case "remove":
			if !exists {
				t.Fatalf("remove %s: nothing there", op.Path)
			}
			delete(parent, last)
		default:
			t.Fatalf("op %q", op.Op)
		}
	}
	return root.(map[string]any)
}

func unescapePointer(s string) string {
	return strings.NewReplacer("~1", "/", "~0", "~").Replace(s)
}

// TestPanickingValidatorDenies: a handler that panics denies the request
// with a message, is counted, and the server answers the next request.
func TestPanickingValidatorDenies(t *testing.T) {
	hook, ts := serveHook(t, func(s *Server) (Hook, error) {
		return Validating(s, coreScheme(t), func(ctx context.Context, old, obj *corev1.ConfigMap) (Warnings, error) {
			if obj.Name == "boom" {
				var owners []string
				_ = owners[len(obj.Name)] // the bug: an index out of range
			}
			return nil, nil
		})
	})
	resp := ts.review(t, hook.Path, configMapRequest(t, admissionv1.Create, "boom", nil, configMap("boom", nil)))
	if resp.Allowed || resp.Result == nil || !strings.Contains(resp.Result.Message, "panicked") || !strings.Contains(resp.Result.Message, "index out of range") || !strings.Contains(resp.Result.Message, "configmap ns/boom") {
		t.Fatalf("a panicking handler: %+v, want a denial naming the panic and the object", resp.Result)
	}
	if got := ts.count(t, hook.Path, resultPanic); got != 1 {
		t.Errorf("panics counted %v, want 1", got)
	}
	if resp := ts.review(t, hook.Path, configMapRequest(t, admissionv1.Create, "fine", nil, configMap("fine", nil))); !resp.Allowed {
		t.Errorf("after a panic: %+v, want the next request allowed", resp.Result)
	}
}

// TestSlowHandlerCut: a handler that outlives its budget (a tenth short
// of the webhook's timeout) is answered with a timeout denial in time for
// the apiserver, and its context ended.
func TestSlowHandlerCut(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	sawEnd := make(chan error, 1)
	sawBudget := make(chan time.Duration, 1)
	hook, ts := serveHook(t, func(s *Server) (Hook, error) {
		return Validating(s, coreScheme(t), func(ctx context.Context, old, obj *corev1.ConfigMap) (Warnings, error) {
			deadline, _ := ctx.Deadline()
			sawBudget <- time.Until(deadline) // the budget left as the handler begins
			<-ctx.Done()
			sawEnd <- ctx.Err()
			<-release // and it ignores the end for a while
			return nil, nil
		}, WithTimeout(time.Second))
	})
	began := time.Now()
	resp := ts.review(t, hook.Path, configMapRequest(t, admissionv1.Create, "slow", nil, configMap("slow", nil)))
	took := time.Since(began)
	if resp.Allowed || resp.Result.Code != http.StatusGatewayTimeout || !strings.Contains(resp.Result.Message, "did not decide") {
		t.Errorf("a slow handler: %+v, want a 504 denial saying it did not decide", resp.Result)
	}
	// The cut is the handler's deadline: a budget a tenth short of the
	// timeout, set as the request arrives. That bound holds whatever the
	// machine's load. The answer's own time adds the request's trip and
	// scheduling, which a loaded machine stretches (1.13s was seen at a
	// load of 5-9 on 2 cores), so it is held to a looser bound: no hang.
	if budget := <-sawBudget; budget <= 0 || budget > 900*time.Millisecond {
		t.Errorf("the handler began with %v left before its deadline, want at most 900ms (a tenth short of the 1s timeout)", budget)
	}
	if took >= 3*time.Second {
		t.Errorf("answered after %v: the cut did not end the request", took)
	}
	if err := <-sawEnd; !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("handler's context ended with %v, want the deadline", err)
	}
	if got := ts.count(t, hook.Path, resultTimeout); got != 1 {
		t.Errorf("timeouts counted %v, want 1", got)
	}
}

// TestWrongKindRefused: a request for a kind or version the webhook does
// not judge is refused with a message naming both, and the function is not
// called.
func TestWrongKindRefused(t *testing.T) {
	hook, ts := serveHook(t, func(s *Server) (Hook, error) {
		return Validating(s, coreScheme(t), func(ctx context.Context, old, obj *corev1.ConfigMap) (Warnings, error) {
			t.Error("called for a request of another kind")
			return nil, nil
		})
	})
	for _, kind := range []metav1.GroupVersionKind{{Version: "v1", Kind: "Secret"}, {Group: "apps", Version: "v1", Kind: "ConfigMap"}, {Version: "v2", Kind: "ConfigMap"}} {
		req := configMapRequest(t, admissionv1.Create, "x", nil, configMap("x", nil))
		req.Kind = kind
		resp := ts.review(t, hook.Path, req)
		if resp.Allowed || resp.Result.Code != http.StatusBadRequest || !strings.Contains(resp.Result.Message, "v1 ConfigMap") || !strings.Contains(resp.Result.Message, kind.Version+" "+kind.Kind) {
			t.Errorf("a request for %v: %+v, want 400 naming v1 ConfigMap and it", kind, resp.Result)
		}
	}
	req := configMapRequest(t, admissionv1.Create, "x", nil, nil)
	req.Object = runtime.RawExtension{Raw: []byte(`{"apiVersion":"v1","kind":"ConfigMap","data":"not a map"}`)}
	if resp := ts.review(t, hook.Path, req); resp.Allowed || resp.Result.Code != http.StatusBadRequest || !strings.Contains(resp.Result.Message, "the request's object") {
		t.Errorf("a malformed object: %+v, want 400 naming it", resp.Result)
	}
	if got := ts.count(t, hook.Path, resultBadRequest); got != 4 {
		t.Errorf("bad requests counted %v, want 4", got)
	}
}

// TestBadHTTPRequests: what is not an AdmissionReview POSTed as JSON is
// refused with a status and a reason.
func TestBadHTTPRequests(t *testing.T) {
	hook, ts := serveHook(t, func(s *Server) (Hook, error) {
		return Validating(s, coreScheme(t), func(ctx context.Context, old, obj *corev1.ConfigMap) (Warnings, error) { return nil, nil })
	})
	resp, err := ts.http.Get(ts.url(hook.Path))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET: %d, want 405", resp.StatusCode)
	}
	if code, body := ts.post(t, hook.Path, "application/yaml", []byte("a: b")); code != http.StatusUnsupportedMediaType || !strings.Contains(string(body), "application/json") {
		t.Errorf("YAML: %d %s, want 415 naming JSON", code, body)
	}
	if code, body := ts.post(t, hook.Path, "application/json", []byte(`{"apiVersion":"admission.k8s.io/v1beta1","kind":"AdmissionReview","request":{"uid":"1"}}`)); code != http.StatusBadRequest || !strings.Contains(string(body), "admissionReviewVersions") {
		t.Errorf("v1beta1: %d %s, want 400 naming admissionReviewVersions", code, body)
	}
	if code, _ := ts.post(t, hook.Path, "application/json", []byte(`{not json`)); code != http.StatusBadRequest {
		t.Errorf("broken JSON: %d, want 400", code)
	}
}

// TestRegistrationMistakesNamed: what cannot be served is an error at
// registration, naming the mistake.
func TestRegistrationMistakesNamed(t *testing.T) {
	s, err := NewServer(Options{Addr: "127.0.0.1:0", Certificates: noCertificates{}})
	if err != nil {
		t.Fatal(err)
	}
	validate := func(ctx context.Context, old, obj *corev1.ConfigMap) (Warnings, error) { return nil, nil }
	if _, err := Validating(s, coreScheme(t), validate); err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		err  error
		want string
	}{
		"path taken": {func() error { _, err := Validating(s, coreScheme(t), validate); return err }(), "already served by the validating webhook of /v1, Kind=ConfigMap"},
		"not in scheme": {func() error {
			_, err := Validating(s, runtime.NewScheme(), validate, WithPath("/other"))
			return err
		}(), "not in the scheme"},
		"timeout too long": {func() error { _, err := Validating(s, coreScheme(t), validate, WithTimeout(time.Minute)); return err }(), "from 1 to 30"},
		"bad path":         {func() error { _, err := Validating(s, coreScheme(t), validate, WithPath("nope")); return err }(), "begins with /"},
		"nil func":         {func() error { _, err := Mutating[*corev1.ConfigMap](s, coreScheme(t), nil); return err }(), "DefaultFunc is nil"},
	} {
		if tc.err == nil || !strings.Contains(tc.err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error containing %q", name, tc.err, tc.want)
		}
	}
	for name, opts := range map[string]Options{
		"no certificate":   {},
		"two certificates": {CertDir: t.TempDir(), Certificates: noCertificates{}},
		"empty cert dir":   {CertDir: t.TempDir()},
		"bad address":      {Addr: "9443", CertDir: t.TempDir()},
	} {
		if _, err := NewServer(opts); err == nil {
			t.Errorf("%s: NewServer accepted it", name)
		} else {
			t.Logf("%s: %v", name, err)
		}
	}
}

// noCertificates is a CertificateSource with nothing to serve.
type noCertificates struct{}

func (noCertificates) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return nil, errors.New("no certificate")
}
func (noCertificates) Start(ctx context.Context) error { <-ctx.Done(); return nil }
