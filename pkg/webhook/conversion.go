package webhook

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	kjson "sigs.k8s.io/json"

	"github.com/rein-k8s/rein/pkg/conversion"
)

// defaultConversionPath is where Conversion serves, as a CRD's
// spec.conversion.webhook.clientConfig names it.
const defaultConversionPath = "/convert"

// ConversionHook describes a registered conversion webhook.
type ConversionHook struct {
	Path string
	// Kinds are the kinds it converts, each with a hub and at least one
	// other version: their CRDs need the webhook conversion strategy.
	Kinds []schema.GroupKind
}

// convertible kind: its hub version and its other versions.
type convertibleKind struct {
	hub    schema.GroupVersionKind
	spokes map[string]bool // versions
}

// Conversion serves the conversion webhook of every kind of scheme that
// has a conversion.Hub version, at /convert (or WithPath's). Every other
// version of such a kind must be conversion.Convertible; a kind with two hubs, or
// with a version that is neither, is an error naming it.
func Conversion(s *Server, scheme *runtime.Scheme, opts ...HookOption) (ConversionHook, error) {
	if s == nil || scheme == nil {
		return ConversionHook{}, errors.New("webhook.Conversion needs a Server and a scheme")
	}
	cfg := hookConfig{path: defaultConversionPath}
	for _, o := range opts {
		if err := o(&cfg); err != nil {
			return ConversionHook{}, fmt.Errorf("conversion webhook: %w", err)
		}
	}
	kinds, err := convertibleKinds(scheme)
	if err != nil {
		return ConversionHook{}, err
	}
	if len(kinds) == 0 {
		return ConversionHook{}, errors.New("webhook.Conversion: no kind of the scheme has a Hub version: declare `func (*Kind) Hub() {}` on the version the others convert through")
	}
	c := &converter{path: cfg.path, scheme: scheme, kinds: kinds, server: s}
	if err := s.handle(cfg.path, "the conversion webhook", c); err != nil {
		return ConversionHook{}, err
	}
	h := ConversionHook{Path: cfg.path}
	for gk := range kinds {
		h.Kinds = append(h.Kinds, gk)
	}
	slices.SortFunc(h.Kinds, func(a, b schema.GroupKind) int { return strings.Compare(a.String(), b.String()) })
	return h, nil
}

func convertibleKinds(scheme *runtime.Scheme) (map[schema.GroupKind]*convertibleKind, error) {
	hubType := reflect.TypeFor[conversion.Hub]()
	spokeType := reflect.TypeFor[conversion.Convertible]()
	kinds := map[schema.GroupKind]*convertibleKind{}
	versions := map[schema.GroupKind][]schema.GroupVersionKind{}
	for gvk, t := range scheme.AllKnownTypes() {
		p := reflect.PointerTo(t)
		gk := gvk.GroupKind()
		versions[gk] = append(versions[gk], gvk)
		if !p.Implements(hubType) {
			continue
		}
		if k, ok := kinds[gk]; ok {
			return nil, fmt.Errorf("webhook.Conversion: %s has two Hub versions, %s and %s: one version is the hub, the others convert to it", gk, k.hub.Version, gvk.Version)
		}
		kinds[gk] = &convertibleKind{hub: gvk, spokes: map[string]bool{}}
	}
	for gk, k := range kinds {
		for _, gvk := range versions[gk] {
			if gvk == k.hub {
				continue
			}
			if !reflect.PointerTo(scheme.AllKnownTypes()[gvk]).Implements(spokeType) {
				return nil, fmt.Errorf("webhook.Conversion: %s version %s is not Convertible: give *%s ConvertTo(Hub) and ConvertFrom(Hub) methods that convert to and from %s",
					gk, gvk.Version, scheme.AllKnownTypes()[gvk].Name(), k.hub.Version)
			}
			k.spokes[gvk.Version] = true
		}
	}
	// A Convertible version of a kind without a hub has nothing to
	// convert through.
	for gvk, t := range scheme.AllKnownTypes() {
		if _, ok := kinds[gvk.GroupKind()]; !ok && reflect.PointerTo(t).Implements(spokeType) {
			return nil, fmt.Errorf("webhook.Conversion: %s version %s is Convertible, but no version of %s is the Hub: declare `func (*Kind) Hub() {}` on the one it converts through", gvk.GroupKind(), gvk.Version, gvk.Kind)
		}
	}
	// Kinds whose only version is the hub need no webhook.
	for gk, k := range kinds {
		if len(k.spokes) == 0 {
			delete(kinds, gk)
		}
	}
	return kinds, nil
}

// converter serves ConversionReviews.
type converter struct {
	path   string
	scheme *runtime.Scheme
	kinds  map[schema.GroupKind]*convertibleKind
	server *Server
}

func (c *converter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	began := time.Now()
	var review apiextensionsv1.ConversionReview
	if status, err := readReview(w, r, &review); err != nil {
		http.Error(w, err.Error(), status)
		c.server.metrics.Load().observe(c.path, resultBadRequest, began)
		return
	}
	if review.APIVersion != apiextensionsv1.SchemeGroupVersion.String() || review.Kind != "ConversionReview" || review.Request == nil {
		http.Error(w, fmt.Sprintf("webhook %s: want a ConversionReview of %s with a request, got %s %q: list only v1 in the CRD's conversionReviewVersions",
			c.path, apiextensionsv1.SchemeGroupVersion, review.Kind, review.APIVersion), http.StatusBadRequest)
		c.server.metrics.Load().observe(c.path, resultBadRequest, began)
		return
	}
	resp := &apiextensionsv1.ConversionResponse{UID: review.Request.UID, Result: metav1.Status{Status: metav1.StatusSuccess}}
	result := resultAllowed
	converted, err := c.convertAll(review.Request)
	if err != nil {
		// All or nothing: the apiserver takes no partial answer.
		resp.Result = metav1.Status{Status: metav1.StatusFailure, Message: err.Error()}
		result = resultDenied
		var p *conversionPanic
		if errors.As(err, &p) {
			result = resultPanic
			c.server.log.WithField("webhook", c.path).WithField("stack", string(p.stack)).Errorf("conversion panicked: %v", p.value)
		}
	} else {
		resp.ConvertedObjects = converted
	}
	out := apiextensionsv1.ConversionReview{TypeMeta: review.TypeMeta, Response: resp}
	writeJSON(w, &out, c.server)
	c.server.metrics.Load().observe(c.path, result, began)
}

func (c *converter) convertAll(req *apiextensionsv1.ConversionRequest) ([]runtime.RawExtension, error) {
	want, err := schema.ParseGroupVersion(req.DesiredAPIVersion)
	if err != nil {
		return nil, fmt.Errorf("conversion webhook %s: desiredAPIVersion %q: %w", c.path, req.DesiredAPIVersion, err)
	}
	out := make([]runtime.RawExtension, 0, len(req.Objects))
	for i, raw := range req.Objects {
		b, err := c.convert(raw.Raw, want)
		if err != nil {
			return nil, fmt.Errorf("conversion webhook %s: object %d of %d: %w", c.path, i+1, len(req.Objects), err)
		}
		out = append(out, runtime.RawExtension{Raw: b})
	}
	return out, nil
}

// conversionPanic is a user conversion function's panic, as an error.
type conversionPanic struct {
	value any
	stack []byte
}

func (p *conversionPanic) Error() string {
	return fmt.Sprintf("the conversion panicked: %v (logged with its stack)", p.value)
}

// convert converts one object, given as JSON, to the version want.
func (c *converter) convert(raw []byte, want schema.GroupVersion) (out []byte, err error) {
	var head struct {
		metav1.TypeMeta
		Metadata struct {
			Namespace string `json:"namespace"`
			Name      string `json:"name"`
		} `json:"metadata"`
	}
	if err := json.Unmarshal(raw, &head); err != nil {
		return nil, fmt.Errorf("not a JSON object: %w", err)
	}
	from := head.GroupVersionKind()
	name := head.Metadata.Name
	if head.Metadata.Namespace != "" {
		name = head.Metadata.Namespace + "/" + name
	}
	what := fmt.Sprintf("%s %s from %s to %s", strings.ToLower(from.Kind), name, from.Version, want.Version)
	if from.Group != want.Group {
		return nil, fmt.Errorf("%s %s: cannot convert to group %s", from.GroupKind(), name, want.Group)
	}
	k, ok := c.kinds[from.GroupKind()]
	if !ok {
		return nil, fmt.Errorf("%s: this webhook converts %s, not %s", what, c.kindList(), from.GroupKind())
	}
	to := want.WithKind(from.Kind)
	for _, v := range []schema.GroupVersionKind{from, to} {
		if v != k.hub && !k.spokes[v.Version] {
			return nil, fmt.Errorf("%s: version %s of %s is not in the scheme (it has %s)", what, v.Version, from.GroupKind(), c.versionList(k))
		}
	}
	if from == to {
		return raw, nil
	}
	defer func() {
		if p := recover(); p != nil {
			out, err = nil, fmt.Errorf("%s: %w", what, &conversionPanic{value: p, stack: debug.Stack()})
		}
	}()
	src, err := c.scheme.New(from)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if err := kjson.UnmarshalCaseSensitivePreserveInts(raw, src); err != nil {
		return nil, fmt.Errorf("%s: read it as %s: %w", what, from.Version, err)
	}
	hub, ok := src.(conversion.Hub)
	if !ok {
		h, err := c.scheme.New(k.hub)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		hub = h.(conversion.Hub)
		if err := src.(conversion.Convertible).ConvertTo(hub); err != nil {
			return nil, fmt.Errorf("%s: %s.ConvertTo(%s): %w", what, from.Version, k.hub.Version, err)
		}
	}
	var dst runtime.Object = hub
	if to != k.hub {
		d, err := c.scheme.New(to)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		if err := d.(conversion.Convertible).ConvertFrom(hub); err != nil {
			return nil, fmt.Errorf("%s: %s.ConvertFrom(%s): %w", what, to.Version, k.hub.Version, err)
		}
		dst = d
	}
	dst.GetObjectKind().SetGroupVersionKind(to)
	return json.Marshal(dst)
}

func (c *converter) kindList() string {
	var s []string
	for gk := range c.kinds {
		s = append(s, gk.String())
	}
	slices.Sort(s)
	return strings.Join(s, ", ")
}

func (c *converter) versionList(k *convertibleKind) string {
	v := []string{k.hub.Version + " (hub)"}
	for s := range k.spokes {
		v = append(v, s)
	}
	slices.Sort(v[1:])
	return strings.Join(v, ", ")
}
