package webhook

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apiextensionsclient "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/rein-k8s/rein/internal/testkit"
	"github.com/rein-k8s/rein/pkg/testenv"
)

// The control plane, started by the first test that needs it, so that the
// unit tests run alone do not wait for it.
var controlPlane = testkit.LazyEnv{Options: testenv.Options{}}

func TestMain(m *testing.M) { os.Exit(controlPlane.Main(m)) }

var widgetsV1 = schema.GroupVersionResource{Group: widgetGroup, Version: "v1", Resource: "widgets"}
var widgetsV2 = schema.GroupVersionResource{Group: widgetGroup, Version: "v2", Resource: "widgets"}

// installWidgets serves the test's webhooks for Widgets, registers them
// with the apiserver (URL endpoints on 127.0.0.1 and the CA bundle, as a
// deployment's manifests would with a Service) and installs the Widget CRD
// with v1 stored and v2 converted by the webhook. It returns the
// namespace the webhooks judge.
func installWidgets(t *testing.T, e *testenv.Env, validate ValidateFunc[*WidgetV1], defaults DefaultFunc[*WidgetV1]) string {
	t.Helper()
	ctx := context.Background()
	scheme := widgetScheme(t)
	var hooks []Hook
	var conv ConversionHook
	ts := startServer(t, func(s *Server) {
		v, err := Validating(s, scheme, validate, WithOperations(admissionregistrationv1.Create, admissionregistrationv1.Update, admissionregistrationv1.Delete))
		if err != nil {
			t.Fatal(err)
		}
		m, err := Mutating(s, scheme, defaults)
		if err != nil {
			t.Fatal(err)
		}
		if conv, err = Conversion(s, scheme); err != nil {
			t.Fatal(err)
		}
		hooks = []Hook{v, m}
	})
	ep := Endpoint{URL: "https://" + ts.Addr()}

	cs, err := kubernetes.NewForConfig(e.Config())
	if err != nil {
		t.Fatal(err)
	}
	ns, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "webhook-", Labels: map[string]string{"webhook-test": t.Name()}}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	name := "rein-" + strings.ToLower(t.Name())
	validating, mutating, err := Configurations(name, hooks, ep, ts.ca.pem)
	if err != nil {
		t.Fatal(err)
	}
	// Only this test's namespace: the tests of the package share the
	// apiserver.
	only := &metav1.LabelSelector{MatchLabels: map[string]string{"webhook-test": t.Name()}}
	for i := range validating.Webhooks {
		validating.Webhooks[i].NamespaceSelector = only
	}
	for i := range mutating.Webhooks {
		mutating.Webhooks[i].NamespaceSelector = only
	}
	if _, err := cs.AdmissionregistrationV1().ValidatingWebhookConfigurations().Create(ctx, validating, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.AdmissionregistrationV1().MutatingWebhookConfigurations().Create(ctx, mutating, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx := context.Background()
		_ = cs.AdmissionregistrationV1().ValidatingWebhookConfigurations().Delete(ctx, name, metav1.DeleteOptions{})
		_ = cs.AdmissionregistrationV1().MutatingWebhookConfigurations().Delete(ctx, name, metav1.DeleteOptions{})
	})

	conversion, err := CRDConversion(conv, ep, ts.ca.pem)
	if err != nil {
		t.Fatal(err)
	}
	installWidgetCRD(t, e, conversion)
	return ns.Name
}

func installWidgetCRD(t *testing.T, e *testenv.Env, conversion *apiextensionsv1.CustomResourceConversion) {
	t.Helper()
	ctx := context.Background()
	ext, err := apiextensionsclient.NewForConfig(e.Config())
	if err != nil {
		t.Fatal(err)
	}
	preserve := true
	schemaOf := &apiextensionsv1.CustomResourceValidation{OpenAPIV3Schema: &apiextensionsv1.JSONSchemaProps{Type: "object", XPreserveUnknownFields: &preserve}}
	crd := &apiextensionsv1.CustomResourceDefinition{
		ObjectMeta: metav1.ObjectMeta{Name: "widgets." + widgetGroup},
		Spec: apiextensionsv1.CustomResourceDefinitionSpec{
			Group: widgetGroup,
			Names: apiextensionsv1.CustomResourceDefinitionNames{Plural: "widgets", Singular: "widget", Kind: "Widget", ListKind: "WidgetList"},
			Scope: apiextensionsv1.NamespaceScoped,
			Versions: []apiextensionsv1.CustomResourceDefinitionVersion{
				{Name: "v1", Served: true, Storage: true, Schema: schemaOf},
				{Name: "v2", Served: true, Schema: schemaOf},
			},
			Conversion: conversion,
		},
	}
	existing, err := ext.ApiextensionsV1().CustomResourceDefinitions().Get(ctx, crd.Name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		_, err = ext.ApiextensionsV1().CustomResourceDefinitions().Create(ctx, crd, metav1.CreateOptions{})
	case err == nil:
		// A later test's webhook server: point the conversion at it.
		existing.Spec = crd.Spec
		_, err = ext.ApiextensionsV1().CustomResourceDefinitions().Update(ctx, existing, metav1.UpdateOptions{})
	}
	if err != nil {
		t.Fatal(err)
	}
	err = wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		c, err := ext.ApiextensionsV1().CustomResourceDefinitions().Get(ctx, crd.Name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		for _, cond := range c.Status.Conditions {
			if cond.Type == apiextensionsv1.Established && cond.Status == apiextensionsv1.ConditionTrue {
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		t.Fatalf("CRD %s not established: %v", crd.Name, err)
	}
}

// warningRecorder collects the warnings the apiserver passes on.
type warningRecorder struct {
	mu   sync.Mutex
	seen []string
}

func (w *warningRecorder) HandleWarningHeader(code int, agent, text string) {
	w.mu.Lock()
	w.seen = append(w.seen, text)
	w.mu.Unlock()
}

func (w *warningRecorder) take() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := w.seen
	w.seen = nil
	return out
}

func toUnstructured(t *testing.T, obj runtime.Object) *unstructured.Unstructured {
	t.Helper()
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		t.Fatal(err)
	}
	return &unstructured.Unstructured{Object: m}
}

func fromUnstructured[T any](t *testing.T, u *unstructured.Unstructured) *T {
	t.Helper()
	out := new(T)
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, out); err != nil {
		t.Fatal(err)
	}
	return out
}

func sizeClass(size int) string {
	if size > 100 {
		return "large"
	}
	return "small"
}

// TestWebhooksOnAPIServer: the apiserver calls the server on 127.0.0.1
// through the configurations Configurations and CRDConversion built. A
// create the validator refuses fails with its message; a defaulted field
// is set; warnings reach the client; a v2 object written is read back as
// v1 and as v2 unchanged, and a v1 one as v2; a panicking validator denies
// cleanly and the next request goes through.
func TestWebhooksOnAPIServer(t *testing.T) {
	e := controlPlane.Get(t)
	ns := installWidgets(t, e,
		func(ctx context.Context, old, obj *WidgetV1) (Warnings, error) {
			if obj == nil { // delete
				if old.Labels["protected"] == "true" {
					return nil, errors.New("protected widgets are not deleted")
				}
				return nil, nil
			}
			if obj.Name == "panic" {
				panic("validator bug")
			}
			if obj.Spec.Size < 0 {
				return nil, fmt.Errorf("size %d: a widget's size is not negative", obj.Spec.Size)
			}
			if obj.Spec.Size > 100 {
				return Warnings{"large widgets ship slowly"}, nil
			}
			return nil, nil
		},
		func(ctx context.Context, obj *WidgetV1) error {
			if obj.Labels == nil {
				obj.Labels = map[string]string{}
			}
			obj.Labels["size-class"] = sizeClass(obj.Spec.Size)
			if obj.Spec.Color == "" {
				obj.Spec.Color = "grey"
			}
			return nil
		})
	warnings := &warningRecorder{}
	cfg := e.Config()
	cfg.WarningHandler = warnings
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	v1 := dyn.Resource(widgetsV1).Namespace(ns)
	v2 := dyn.Resource(widgetsV2).Namespace(ns)
	widget := func(name string, size int) *WidgetV1 {
		return &WidgetV1{TypeMeta: metav1.TypeMeta{APIVersion: widgetGroup + "/v1", Kind: "Widget"}, ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: WidgetV1Spec{Size: size}}
	}

	// Denied, with the validator's message.
	_, err = v1.Create(ctx, toUnstructured(t, widget("negative", -3)), metav1.CreateOptions{})
	if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), "size -3: a widget's size is not negative") {
		t.Errorf("a negative size: %v, want Forbidden with the validator's message", err)
	}

	// Defaulted, and warned.
	got, err := v1.Create(ctx, toUnstructured(t, widget("big", 500)), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	big := fromUnstructured[WidgetV1](t, got)
	if big.Labels["size-class"] != "large" || big.Spec.Color != "grey" {
		t.Errorf("created %+v %+v: want the defaults size-class=large and color grey", big.Labels, big.Spec)
	}
	if w := warnings.take(); !reflect.DeepEqual(w, []string{"large widgets ship slowly"}) {
		t.Errorf("warnings %q, want the validator's", w)
	}

	// An update goes through both as well.
	big.Spec.Size = 7
	got, err = v1.Update(ctx, toUnstructured(t, big), metav1.UpdateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if l := fromUnstructured[WidgetV1](t, got).Labels["size-class"]; l != "small" {
		t.Errorf("after an update to size 7: size-class %q, want small", l)
	}

	// A panicking validator denies, and the server goes on.
	_, err = v1.Create(ctx, toUnstructured(t, widget("panic", 1)), metav1.CreateOptions{})
	if err == nil || !strings.Contains(err.Error(), "panicked: validator bug") {
		t.Errorf("a panicking validator: %v, want a denial saying it panicked", err)
	}
	if _, err := v1.Create(ctx, toUnstructured(t, widget("after-panic", 1)), metav1.CreateOptions{}); err != nil {
		t.Errorf("after the panic: %v", err)
	}

	// A guarded delete.
	prot := widget("protected", 1)
	prot.Labels = map[string]string{"protected": "true"}
	if _, err := v1.Create(ctx, toUnstructured(t, prot), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := v1.Delete(ctx, "protected", metav1.DeleteOptions{}); err == nil || !strings.Contains(err.Error(), "protected widgets are not deleted") {
		t.Errorf("deleting a protected widget: %v, want the validator's refusal", err)
	}

	// Conversion: v2 written, read as v1 and v2; v1 written, read as v2.
	w2 := &WidgetV2{TypeMeta: metav1.TypeMeta{APIVersion: widgetGroup + "/v2", Kind: "Widget"}, ObjectMeta: metav1.ObjectMeta{Name: "from-v2"}}
	w2.Spec.Dimensions.Size, w2.Spec.Colour, w2.Spec.Finish = 42, "red", "matte"
	if _, err := v2.Create(ctx, toUnstructured(t, w2), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	asV1, err := v1.Get(ctx, "from-v2", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if w := fromUnstructured[WidgetV1](t, asV1); w.Spec.Size != 42 || w.Spec.Color != "red" || w.Annotations[finishAnnotation] != "matte" || w.Labels["size-class"] != "small" {
		t.Errorf("a v2 object read as v1: %+v %+v %+v", w.Spec, w.Annotations, w.Labels)
	}
	asV2, err := v2.Get(ctx, "from-v2", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if w := fromUnstructured[WidgetV2](t, asV2); w.Spec != w2.Spec {
		t.Errorf("a v2 object read back as v2: %+v, want %+v", w.Spec, w2.Spec)
	}
	fromV1, err := v2.Get(ctx, "big", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if w := fromUnstructured[WidgetV2](t, fromV1); w.Spec.Dimensions.Size != 7 || w.Spec.Colour != "grey" || w.Spec.Finish != "" {
		t.Errorf("a v1 object read as v2: %+v", w.Spec)
	}
}

// TestConversionRoundTripOnAPIServer: generated v2 objects, stored as v1
// by the apiserver through the webhook, read back as v2 equal what was
// written (spec, labels and annotations), and each read as v1 holds the
// same size.
func TestConversionRoundTripOnAPIServer(t *testing.T) {
	e := controlPlane.Get(t)
	ns := installWidgets(t, e,
		func(ctx context.Context, old, obj *WidgetV1) (Warnings, error) { return nil, nil },
		func(ctx context.Context, obj *WidgetV1) error { return nil })
	dyn, err := dynamic.NewForConfig(e.Config())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	r := rand.New(rand.NewPCG(7, 8))
	for i := range 40 {
		w := randomWidgetV2(r, i)
		w.Namespace = ns
		if _, err := dyn.Resource(widgetsV2).Namespace(ns).Create(ctx, toUnstructured(t, w), metav1.CreateOptions{}); err != nil {
			t.Fatalf("create %d: %v", i, err)
		}
		back, err := dyn.Resource(widgetsV2).Namespace(ns).Get(ctx, w.Name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		got := fromUnstructured[WidgetV2](t, back)
		if got.Spec != w.Spec || !reflect.DeepEqual(got.Labels, w.Labels) || !reflect.DeepEqual(got.Annotations, w.Annotations) {
			t.Errorf("object %d: wrote %+v %v %v, read back %+v %v %v", i, w.Spec, w.Labels, w.Annotations, got.Spec, got.Labels, got.Annotations)
		}
		asV1, err := dyn.Resource(widgetsV1).Namespace(ns).Get(ctx, w.Name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if s := fromUnstructured[WidgetV1](t, asV1).Spec.Size; s != w.Spec.Dimensions.Size {
			t.Errorf("object %d as v1: size %d, want %d", i, s, w.Spec.Dimensions.Size)
		}
	}
}

var _ rest.WarningHandler = (*warningRecorder)(nil)
