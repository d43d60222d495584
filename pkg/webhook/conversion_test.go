package webhook

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"testing"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"

	"github.com/rein-k8s/rein/pkg/conversion"
)

// Two versions of a test kind with different shapes: v1 is the hub;
// v2 nests the size, spells colour differently and has a field v1 lacks,
// which v1 keeps in an annotation so that a round trip loses nothing.
var widgetGroup = "test.rein.dev"

type WidgetV1 struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              WidgetV1Spec `json:"spec"`
}

type WidgetV1Spec struct {
	Size  int    `json:"size"`
	Color string `json:"color,omitempty"`
}

func (w *WidgetV1) DeepCopyObject() runtime.Object { return copyThroughJSON(w, &WidgetV1{}) }

func (*WidgetV1) Hub() {}

type WidgetV2 struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              WidgetV2Spec `json:"spec"`
}

type WidgetV2Spec struct {
	Dimensions struct {
		Size int `json:"size"`
	} `json:"dimensions"`
	Colour string `json:"colour,omitempty"`
	Finish string `json:"finish,omitempty"`
}

func (w *WidgetV2) DeepCopyObject() runtime.Object { return copyThroughJSON(w, &WidgetV2{}) }

// copyThroughJSON is the test kinds' deep copy: a JSON round trip copies
// every field, the nested ones too, without a generated DeepCopy.
func copyThroughJSON[T runtime.Object](in, out T) runtime.Object {
	data, err := json.Marshal(in)
	if err != nil {
		panic(err) // a test type that cannot be marshalled is a bug in the test
	}
	if err := json.Unmarshal(data, out); err != nil {
		panic(err)
	}
	return out
}

const finishAnnotation = "test.rein.dev/v2-finish"

func (w *WidgetV2) ConvertTo(h conversion.Hub) error {
	hub := h.(*WidgetV1)
	w.ObjectMeta.DeepCopyInto(&hub.ObjectMeta)
	if w.Spec.Colour == "explode" {
		panic("the colour explodes")
	}
	if w.Spec.Colour == "unrepresentable" {
		return errors.New("v1 has no such colour")
	}
	hub.Spec = WidgetV1Spec{Size: w.Spec.Dimensions.Size, Color: w.Spec.Colour}
	if w.Spec.Finish != "" {
		if hub.Annotations == nil {
			hub.Annotations = map[string]string{}
		}
		hub.Annotations[finishAnnotation] = w.Spec.Finish
	}
	return nil
}

func (w *WidgetV2) ConvertFrom(h conversion.Hub) error {
	hub := h.(*WidgetV1)
	hub.ObjectMeta.DeepCopyInto(&w.ObjectMeta)
	w.Spec.Dimensions.Size = hub.Spec.Size
	w.Spec.Colour = hub.Spec.Color
	w.Spec.Finish = w.Annotations[finishAnnotation]
	delete(w.Annotations, finishAnnotation)
	if len(w.Annotations) == 0 {
		w.Annotations = nil
	}
	return nil
}

// WidgetV3 is a version that is neither hub nor convertible.
type WidgetV3 struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
}

func (w *WidgetV3) DeepCopyObject() runtime.Object { out := *w; return &out }

// HubV3 is a second hub.
type HubV3 struct{ WidgetV3 }

func (w *HubV3) DeepCopyObject() runtime.Object { out := *w; return &out }
func (*HubV3) Hub()                             {}

func widgetScheme(t testing.TB, extra ...func(*runtime.Scheme)) *runtime.Scheme {
	t.Helper()
	s := runtime.NewScheme()
	s.AddKnownTypeWithName(schema.GroupVersionKind{Group: widgetGroup, Version: "v1", Kind: "Widget"}, &WidgetV1{})
	s.AddKnownTypeWithName(schema.GroupVersionKind{Group: widgetGroup, Version: "v2", Kind: "Widget"}, &WidgetV2{})
	for _, e := range extra {
		e(s)
	}
	return s
}

func (ts *testServer) convert(t *testing.T, path, desired string, objs ...any) *apiextensionsv1.ConversionResponse {
	t.Helper()
	req := &apiextensionsv1.ConversionRequest{UID: types.UID("c-" + strconv.Itoa(len(objs))), DesiredAPIVersion: desired}
	for _, o := range objs {
		req.Objects = append(req.Objects, runtime.RawExtension{Raw: mustJSON(t, o)})
	}
	in := apiextensionsv1.ConversionReview{Request: req}
	in.APIVersion, in.Kind = "apiextensions.k8s.io/v1", "ConversionReview"
	code, body := ts.post(t, path, "application/json", mustJSON(t, &in))
	if code != http.StatusOK {
		t.Fatalf("POST %s: %d %s", path, code, body)
	}
	var out apiextensionsv1.ConversionReview
	if err := json.Unmarshal(body, &out); err != nil {
		t.Fatal(err)
	}
	if out.Response == nil || out.Response.UID != req.UID {
		t.Fatalf("response %s: want one with UID %s", body, req.UID)
	}
	return out.Response
}

func randomWidgetV2(r *rand.Rand, i int) *WidgetV2 {
	w := &WidgetV2{TypeMeta: metav1.TypeMeta{APIVersion: widgetGroup + "/v2", Kind: "Widget"}}
	w.Name, w.Namespace = fmt.Sprintf("w-%d", i), "ns"
	w.Spec.Dimensions.Size = r.IntN(1000) - 500
	colours := []string{"", "red", "green", "ünïcode", `quote"d`}
	w.Spec.Colour = colours[r.IntN(len(colours))]
	if r.IntN(2) == 0 {
		w.Spec.Finish = []string{"matte", "gloss", "a/b"}[r.IntN(3)]
	}
	if r.IntN(3) == 0 {
		w.Labels = map[string]string{"l": strconv.Itoa(r.IntN(10))}
	}
	if r.IntN(3) == 0 {
		w.Annotations = map[string]string{"keep": "me"}
	}
	return w
}

// serveConversion starts a test server converting Widgets.
func serveConversion(t *testing.T) (ConversionHook, *testServer) {
	t.Helper()
	var hook ConversionHook
	ts := startServer(t, func(s *Server) {
		var err error
		if hook, err = Conversion(s, widgetScheme(t)); err != nil {
			t.Fatal(err)
		}
	})
	return hook, ts
}

// TestConversionRoundTrip: objects of v2 converted to v1 and back come
// back as they were, and v1 objects the same way round; a request for the
// version an object already has returns it as it is.
func TestConversionRoundTrip(t *testing.T) {
	hook, ts := serveConversion(t)
	if hook.Path != defaultConversionPath || !reflect.DeepEqual(hook.Kinds, []schema.GroupKind{{Group: widgetGroup, Kind: "Widget"}}) {
		t.Errorf("hook %+v", hook)
	}
	r := rand.New(rand.NewPCG(1, 2))
	const n = 200
	var v2s []any
	for i := range n {
		v2s = append(v2s, randomWidgetV2(r, i))
	}
	toV1 := ts.convert(t, hook.Path, widgetGroup+"/v1", v2s...)
	if toV1.Result.Status != metav1.StatusSuccess || len(toV1.ConvertedObjects) != n {
		t.Fatalf("v2 → v1: %+v, %d objects", toV1.Result, len(toV1.ConvertedObjects))
	}
	var v1s []any
	for i, raw := range toV1.ConvertedObjects {
		var w WidgetV1
		if err := json.Unmarshal(raw.Raw, &w); err != nil {
			t.Fatal(err)
		}
		if w.APIVersion != widgetGroup+"/v1" || w.Kind != "Widget" || w.Spec.Size != v2s[i].(*WidgetV2).Spec.Dimensions.Size {
			t.Fatalf("object %d as v1: %s", i, raw.Raw)
		}
		v1s = append(v1s, &w)
	}
	back := ts.convert(t, hook.Path, widgetGroup+"/v2", v1s...)
	if back.Result.Status != metav1.StatusSuccess || len(back.ConvertedObjects) != n {
		t.Fatalf("v1 → v2: %+v", back.Result)
	}
	for i, raw := range back.ConvertedObjects {
		var w WidgetV2
		if err := json.Unmarshal(raw.Raw, &w); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(&w, v2s[i]) {
			t.Errorf("object %d: v2 → v1 → v2 gives\n%s\nwant\n%s", i, raw.Raw, mustJSON(t, v2s[i]))
		}
	}
	// And v1 → v2 → v1 for the v1 objects (which carry the annotation).
	again := ts.convert(t, hook.Path, widgetGroup+"/v1", anySlice(back.ConvertedObjects)...)
	for i, raw := range again.ConvertedObjects {
		if got, want := raw.Raw, mustJSON(t, v1s[i]); string(got) != string(want) {
			t.Errorf("object %d: v1 → v2 → v1 gives\n%s\nwant\n%s", i, got, want)
		}
	}
	same := ts.convert(t, hook.Path, widgetGroup+"/v2", v2s[0])
	if string(same.ConvertedObjects[0].Raw) != string(mustJSON(t, v2s[0])) {
		t.Errorf("v2 → v2: %s, want it as it was", same.ConvertedObjects[0].Raw)
	}
}

func anySlice(raws []runtime.RawExtension) []any {
	out := make([]any, len(raws))
	for i, r := range raws {
		out[i] = json.RawMessage(r.Raw)
	}
	return out
}

// TestConversionFailuresNamed: a conversion that fails, panics, or is
// asked for what the webhook does not convert fails the whole request
// with a message naming the object and versions; the server goes on.
func TestConversionFailuresNamed(t *testing.T) {
	hook, ts := serveConversion(t)
	ok := randomWidgetV2(rand.New(rand.NewPCG(3, 4)), 1)
	bad := randomWidgetV2(rand.New(rand.NewPCG(3, 4)), 2)
	bad.Spec.Colour = "unrepresentable"
	boom := randomWidgetV2(rand.New(rand.NewPCG(3, 4)), 3)
	boom.Spec.Colour = "explode"
	gadget := map[string]any{"apiVersion": widgetGroup + "/v1", "kind": "Gadget", "metadata": map[string]any{"name": "g"}}
	for _, tc := range []struct {
		name    string
		desired string
		objs    []any
		want    []string
	}{
		{"a failing conversion", widgetGroup + "/v1", []any{ok, bad}, []string{"object 2 of 2", "widget ns/w-2 from v2 to v1", "v1 has no such colour"}},
		{"a panicking conversion", widgetGroup + "/v1", []any{boom}, []string{"widget ns/w-3", "panicked", "the colour explodes"}},
		{"an unknown kind", widgetGroup + "/v2", []any{gadget}, []string{"converts Widget.test.rein.dev", "not Gadget"}},
		{"an unknown version", widgetGroup + "/v9", []any{ok}, []string{"version v9", "v1 (hub), v2"}},
	} {
		resp := ts.convert(t, hook.Path, tc.desired, tc.objs...)
		if resp.Result.Status != metav1.StatusFailure || resp.ConvertedObjects != nil {
			t.Errorf("%s: %+v, want a failure with no objects", tc.name, resp.Result)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(resp.Result.Message, w) {
				t.Errorf("%s: %q does not say %q", tc.name, resp.Result.Message, w)
			}
		}
	}
	if got := ts.count(t, hook.Path, resultPanic); got != 1 {
		t.Errorf("panics counted %v, want 1", got)
	}
	if resp := ts.convert(t, hook.Path, widgetGroup+"/v1", ok); resp.Result.Status != metav1.StatusSuccess {
		t.Errorf("after the failures: %+v", resp.Result)
	}
}

// TestConversionSchemeMistakesNamed: a scheme whose versions cannot all
// be converted through one hub is an error at registration.
func TestConversionSchemeMistakesNamed(t *testing.T) {
	s, err := NewServer(Options{Addr: "127.0.0.1:0", CertDir: func() string { d := t.TempDir(); newTestCA(t).issue(t, d); return d }()})
	if err != nil {
		t.Fatal(err)
	}
	v3 := schema.GroupVersionKind{Group: widgetGroup, Version: "v3", Kind: "Widget"}
	for name, tc := range map[string]struct {
		scheme *runtime.Scheme
		want   string
	}{
		"a version neither hub nor convertible": {widgetScheme(t, func(s *runtime.Scheme) { s.AddKnownTypeWithName(v3, &WidgetV3{}) }), "version v3 is not Convertible"},
		"two hubs":                              {widgetScheme(t, func(s *runtime.Scheme) { s.AddKnownTypeWithName(v3, &HubV3{}) }), "two Hub versions"},
		"no hub": {func() *runtime.Scheme {
			s := runtime.NewScheme()
			s.AddKnownTypeWithName(schema.GroupVersionKind{Group: widgetGroup, Version: "v2", Kind: "Widget"}, &WidgetV2{})
			return s
		}(), "no version of Widget is the Hub"},
		"nothing to convert": {runtime.NewScheme(), "no kind of the scheme has a Hub"},
	} {
		if _, err := Conversion(s, tc.scheme, WithPath("/convert-"+strings.ReplaceAll(name, " ", "-"))); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error containing %q", name, err, tc.want)
		}
	}
}
