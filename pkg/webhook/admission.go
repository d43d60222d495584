package webhook

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"reflect"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	"github.com/gobuffalo/flect"
	admissionv1 "k8s.io/api/admission/v1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	kjson "sigs.k8s.io/json"
)

// Warnings are shown to the client whose request a webhook judged
// (kubectl prints each), whether the request is allowed or not.
type Warnings []string

// ValidateFunc judges a request for an object of one kind: a create (old
// is nil), an update (both set) or a delete (obj is nil). A nil error
// allows it. An error denies it with its message; an error made by
// k8s.io/apimachinery/pkg/api/errors (NewInvalid with field errors,
// NewForbidden, ...) keeps its code, reason and details.
//
// ctx ends when the webhook's timeout is near (WithTimeout), or when the
// apiserver gives up; RequestFrom(ctx) has the rest of the request (user,
// dry run, operation).
type ValidateFunc[T runtime.Object] func(ctx context.Context, old, obj T) (Warnings, error)

// DefaultFunc sets what a create or an update of obj leaves unset. It
// changes obj in place; the server sends the apiserver the JSON patch
// between obj as it came and obj as it returns. An error denies the
// request, as ValidateFunc's.
type DefaultFunc[T runtime.Object] func(ctx context.Context, obj T) error

// defaultTimeout is a webhook's timeout unless WithTimeout says otherwise:
// the timeoutSeconds an admission webhook configuration defaults to.
const defaultTimeout = 10 * time.Second

// maxReviewBytes bounds an AdmissionReview or ConversionReview body: the
// apiserver's objects are 1.5 MiB at most, and an update sends two.
const maxReviewBytes = 8 << 20

// Hook describes a registered admission webhook: what a webhook
// configuration needs to call it.
type Hook struct {
	// Path is where the server serves it.
	Path string
	// GVK is the kind, and the version, it judges: the configuration's
	// rules must name this version (with matchPolicy Equivalent the
	// apiserver converts requests for the kind's other versions to it).
	GVK schema.GroupVersionKind
	// Resource is the kind's resource (plural) the configuration's rules
	// name: the kind in lower case, made plural, unless WithResource.
	Resource string
	// Operations the configuration sends it (WithOperations): CREATE and
	// UPDATE unless told.
	Operations []admissionregistrationv1.OperationType
	// Mutating: a defaulting webhook (MutatingWebhookConfiguration).
	Mutating bool
	// Timeout is the configuration's timeoutSeconds this webhook expects.
	Timeout time.Duration
}

// HookOption changes a webhook's registration.
type HookOption func(*hookConfig) error

type hookConfig struct {
	path       string
	timeout    time.Duration
	resource   string
	operations []admissionregistrationv1.OperationType
}

// WithResource names the kind's resource (plural) for the configuration's
// rules, where the default (the kind in lower case, made plural in
// English) is not it.
func WithResource(plural string) HookOption {
	return func(c *hookConfig) error {
		if plural == "" || strings.ToLower(plural) != plural {
			return fmt.Errorf("WithResource(%q): a resource is a lower-case plural, e.g. virtualmachines", plural)
		}
		c.resource = plural
		return nil
	}
}

// WithOperations sets which operations the configuration sends the
// webhook (CREATE and UPDATE unless told; add DELETE for a validator that
// guards deletes).
func WithOperations(ops ...admissionregistrationv1.OperationType) HookOption {
	return func(c *hookConfig) error {
		if len(ops) == 0 {
			return errors.New("WithOperations: no operation")
		}
		for _, op := range ops {
			switch op {
			case admissionregistrationv1.Create, admissionregistrationv1.Update, admissionregistrationv1.Delete:
			default:
				return fmt.Errorf("WithOperations: %q is not CREATE, UPDATE or DELETE (a CONNECT carries options, not the kind's object)", op)
			}
		}
		c.operations = slices.Clone(ops)
		return nil
	}
}

// WithPath serves the webhook at path instead of the default,
// /validate-<group>-<version>-<kind> or /mutate-… (dots of the group as
// dashes, "core" for the core group, the kind in lower case).
func WithPath(path string) HookOption {
	return func(c *hookConfig) error {
		if !strings.HasPrefix(path, "/") {
			return fmt.Errorf("WithPath(%q): a path begins with /", path)
		}
		c.path = path
		return nil
	}
}

// WithTimeout is the timeoutSeconds of the webhook's configuration (1 to
// 30 s; 10 s, the configuration's default, if not given). The handler's context ends a tenth
// of it earlier, so that a slow handler is answered by a denial that says
// so, before the apiserver gives up on the call.
func WithTimeout(d time.Duration) HookOption {
	return func(c *hookConfig) error {
		if d < time.Second || d > 30*time.Second || d%time.Second != 0 {
			return fmt.Errorf("WithTimeout(%v): an admission webhook's timeoutSeconds is a whole number of seconds from 1 to 30", d)
		}
		c.timeout = d
		return nil
	}
}

// Validating serves fn as the validating webhook of T's kind on s.
func Validating[T runtime.Object](s *Server, scheme *runtime.Scheme, fn ValidateFunc[T], opts ...HookOption) (Hook, error) {
	if fn == nil {
		return Hook{}, errors.New("webhook.Validating: the ValidateFunc is nil")
	}
	return register(s, scheme, false, fn, nil, opts)
}

// Mutating serves fn as the defaulting (mutating) webhook of T's kind on s.
func Mutating[T runtime.Object](s *Server, scheme *runtime.Scheme, fn DefaultFunc[T], opts ...HookOption) (Hook, error) {
	if fn == nil {
		return Hook{}, errors.New("webhook.Mutating: the DefaultFunc is nil")
	}
	return register(s, scheme, true, nil, fn, opts)
}

func register[T runtime.Object](s *Server, scheme *runtime.Scheme, mutating bool, validate ValidateFunc[T], defaults DefaultFunc[T], opts []HookOption) (Hook, error) {
	if s == nil || scheme == nil {
		return Hook{}, errors.New("webhook: register needs a Server and a scheme")
	}
	newObj, err := newFunc[T]()
	if err != nil {
		return Hook{}, err
	}
	gvks, _, err := scheme.ObjectKinds(newObj())
	if err != nil || len(gvks) == 0 {
		return Hook{}, fmt.Errorf("webhook: %T is not in the scheme: add its group to the scheme first (%v)", newObj(), err)
	}
	gvk := gvks[0]
	cfg := hookConfig{
		timeout:    defaultTimeout,
		path:       defaultPath(mutating, gvk),
		resource:   flect.Pluralize(strings.ToLower(gvk.Kind)),
		operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create, admissionregistrationv1.Update},
	}
	for _, o := range opts {
		if err := o(&cfg); err != nil {
			return Hook{}, fmt.Errorf("webhook for %s: %w", gvk.Kind, err)
		}
	}
	h := Hook{Path: cfg.path, GVK: gvk, Resource: cfg.resource, Operations: cfg.operations, Mutating: mutating, Timeout: cfg.timeout}
	a := &admission[T]{
		hook:     h,
		newObj:   newObj,
		validate: validate,
		defaults: defaults,
		budget:   cfg.timeout - cfg.timeout/10,
		server:   s,
	}
	what := "the validating webhook of " + gvk.String()
	if mutating {
		what = "the defaulting webhook of " + gvk.String()
	}
	if err := s.handle(h.Path, what, a); err != nil {
		return Hook{}, err
	}
	return h, nil
}

// newFunc returns a constructor of T, a pointer to a struct.
func newFunc[T runtime.Object]() (func() T, error) {
	t := reflect.TypeFor[T]()
	if t.Kind() != reflect.Pointer || t.Elem().Kind() != reflect.Struct {
		return nil, fmt.Errorf("webhook: %v is not a pointer to a struct (use the kind's Go type as *Kind)", t)
	}
	elem := t.Elem()
	return func() T { return reflect.New(elem).Interface().(T) }, nil
}

func defaultPath(mutating bool, gvk schema.GroupVersionKind) string {
	group := gvk.Group
	if group == "" {
		group = "core"
	}
	verb := "validate"
	if mutating {
		verb = "mutate"
	}
	return fmt.Sprintf("/%s-%s-%s-%s", verb, strings.ReplaceAll(group, ".", "-"), gvk.Version, strings.ToLower(gvk.Kind))
}

type requestKey struct{}

// RequestFrom returns the admission request a webhook's handler answers
// (operation, user, dry run, sub-resource); false outside one.
func RequestFrom(ctx context.Context) (*admissionv1.AdmissionRequest, bool) {
	r, ok := ctx.Value(requestKey{}).(*admissionv1.AdmissionRequest)
	return r, ok
}

// admission serves one kind's validating or defaulting webhook.
type admission[T runtime.Object] struct {
	hook     Hook
	newObj   func() T
	validate ValidateFunc[T]
	defaults DefaultFunc[T]
	budget   time.Duration
	server   *Server
}

func (a *admission[T]) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	began := time.Now()
	var review admissionv1.AdmissionReview
	if status, err := readReview(w, r, &review); err != nil {
		http.Error(w, err.Error(), status)
		a.server.metrics.Load().observe(a.hook.Path, resultBadRequest, began)
		return
	}
	if review.APIVersion != admissionv1.SchemeGroupVersion.String() || review.Kind != "AdmissionReview" || review.Request == nil {
		http.Error(w, fmt.Sprintf("webhook %s: want an AdmissionReview of %s with a request, got %s %q: list only v1 in the configuration's admissionReviewVersions",
			a.hook.Path, admissionv1.SchemeGroupVersion, review.Kind, review.APIVersion), http.StatusBadRequest)
		a.server.metrics.Load().observe(a.hook.Path, resultBadRequest, began)
		return
	}
	resp, result := a.admit(r.Context(), review.Request)
	resp.UID = review.Request.UID
	out := admissionv1.AdmissionReview{TypeMeta: review.TypeMeta, Response: resp}
	writeJSON(w, &out, a.server)
	a.server.metrics.Load().observe(a.hook.Path, result, began)
}

// admit judges req; the result is the metrics label.
func (a *admission[T]) admit(ctx context.Context, req *admissionv1.AdmissionRequest) (*admissionv1.AdmissionResponse, string) {
	if got := (schema.GroupVersionKind{Group: req.Kind.Group, Version: req.Kind.Version, Kind: req.Kind.Kind}); got != a.hook.GVK {
		return deny(http.StatusBadRequest, fmt.Sprintf("webhook %s judges %s, and was called for %s: make the configuration's rules name %s only, or register a webhook for %s",
			a.hook.Path, gvkString(a.hook.GVK), gvkString(got), gvkString(a.hook.GVK), gvkString(got))), resultBadRequest
	}
	var old, obj T
	if len(req.OldObject.Raw) > 0 {
		o, err := a.decode(req.OldObject.Raw)
		if err != nil {
			return deny(http.StatusBadRequest, fmt.Sprintf("webhook %s: the request's old object: %v", a.hook.Path, err)), resultBadRequest
		}
		old = o
	}
	if len(req.Object.Raw) > 0 && req.Operation != admissionv1.Delete && req.Operation != admissionv1.Connect {
		o, err := a.decode(req.Object.Raw)
		if err != nil {
			return deny(http.StatusBadRequest, fmt.Sprintf("webhook %s: the request's object: %v", a.hook.Path, err)), resultBadRequest
		}
		obj = o
	}
	switch req.Operation {
	case admissionv1.Create, admissionv1.Update:
	case admissionv1.Delete:
		if a.hook.Mutating {
			return allow(nil), resultAllowed // nothing to default
		}
	default:
		// CONNECT (exec, proxy) carries options, not the kind's object.
		return allow(nil), resultAllowed
	}
	if a.hook.Mutating {
		return a.mutate(ctx, req, obj)
	}
	warnings, result, err := a.call(ctx, req, func(ctx context.Context) (Warnings, error) { return a.validate(ctx, old, obj) })
	if result != "" {
		return denyErr(err, warnings), result
	}
	if err != nil {
		return denyErr(err, warnings), resultDenied
	}
	return allow(warnings), resultAllowed
}

func (a *admission[T]) mutate(ctx context.Context, req *admissionv1.AdmissionRequest, obj T) (*admissionv1.AdmissionResponse, string) {
	// The patch is between obj as the Go type reads it and obj after the
	// defaulter, both written by the same code: fields the Go type does
	// not know are in neither, so the patch leaves them as they are.
	before, err := json.Marshal(obj)
	if err != nil {
		return deny(http.StatusInternalServerError, fmt.Sprintf("webhook %s: encode the object: %v", a.hook.Path, err)), resultDenied
	}
	_, result, err := a.call(ctx, req, func(ctx context.Context) (Warnings, error) { return nil, a.defaults(ctx, obj) })
	if result != "" {
		return denyErr(err, nil), result
	}
	if err != nil {
		return denyErr(err, nil), resultDenied
	}
	after, err := json.Marshal(obj)
	if err != nil {
		return deny(http.StatusInternalServerError, fmt.Sprintf("webhook %s: encode the defaulted object: %v", a.hook.Path, err)), resultDenied
	}
	ops, err := jsonPatch(before, after)
	if err != nil {
		return deny(http.StatusInternalServerError, fmt.Sprintf("webhook %s: patch: %v", a.hook.Path, err)), resultDenied
	}
	resp := allow(nil)
	if len(ops) > 0 {
		patch, err := json.Marshal(ops)
		if err != nil {
			return deny(http.StatusInternalServerError, fmt.Sprintf("webhook %s: encode the patch: %v", a.hook.Path, err)), resultDenied
		}
		pt := admissionv1.PatchTypeJSONPatch
		resp.Patch, resp.PatchType = patch, &pt
	}
	return resp, resultAllowed
}

// call runs fn under the webhook's time budget. A panic or a timeout is
// turned into a result ("panic", "timeout") and an error; otherwise the
// result is "" and fn's own values are returned. A handler that ignores
// its context's end is left to finish on its own goroutine: the request
// has its answer already, and what the handler returns is dropped.
func (a *admission[T]) call(ctx context.Context, req *admissionv1.AdmissionRequest, fn func(context.Context) (Warnings, error)) (Warnings, string, error) {
	ctx, cancel := context.WithTimeout(context.WithValue(ctx, requestKey{}, req), a.budget)
	defer cancel()
	type outcome struct {
		warnings Warnings
		err      error
		panicked any
		stack    []byte
	}
	done := make(chan outcome, 1)
	go func() {
		defer func() {
			if p := recover(); p != nil {
				done <- outcome{panicked: p, stack: debug.Stack()}
			}
		}()
		w, err := fn(ctx)
		done <- outcome{warnings: w, err: err}
	}()
	select {
	case o := <-done:
		if o.panicked != nil {
			a.server.log.WithField("webhook", a.hook.Path).WithField("object", objectName(req)).
				WithField("stack", string(o.stack)).Errorf("webhook handler panicked: %v", o.panicked)
			return nil, resultPanic, fmt.Errorf("webhook %s failed on %s (the handler panicked: %v); the request is denied, and the panic logged", a.hook.Path, objectName(req), o.panicked)
		}
		return o.warnings, "", o.err
	case <-ctx.Done():
		a.server.log.WithField("webhook", a.hook.Path).WithField("object", objectName(req)).
			Warnf("webhook handler still running after %v; denied", a.budget)
		return nil, resultTimeout, apierrors.NewTimeoutError(fmt.Sprintf("webhook %s did not decide on %s within %v (its timeout is %v): the request is denied", a.hook.Path, objectName(req), a.budget, a.hook.Timeout), 0)
	}
}

// decode reads raw as T. The request's kind was checked already, so the
// object is decoded straight into T, case-sensitively as the apiserver
// reads JSON, without the codec's pass that first finds the kind (a
// quarter of a server's CPU per request); its apiVersion and kind are
// then checked against T's.
func (a *admission[T]) decode(raw []byte) (T, error) {
	var zero T
	into := a.newObj()
	if err := kjson.UnmarshalCaseSensitivePreserveInts(raw, into); err != nil {
		return zero, fmt.Errorf("cannot read it as %s: %w", gvkString(a.hook.GVK), err)
	}
	if got := into.GetObjectKind().GroupVersionKind(); got != a.hook.GVK {
		return zero, fmt.Errorf("it is %s, not %s", gvkString(got), gvkString(a.hook.GVK))
	}
	return into, nil
}

func objectName(req *admissionv1.AdmissionRequest) string {
	kind := strings.ToLower(req.Kind.Kind)
	if req.Namespace != "" {
		return fmt.Sprintf("%s %s/%s", kind, req.Namespace, req.Name)
	}
	if req.Name == "" {
		return "a new " + kind // generateName: no name yet
	}
	return kind + " " + req.Name
}

func gvkString(gvk schema.GroupVersionKind) string {
	if gvk.Group == "" {
		return gvk.Version + " " + gvk.Kind
	}
	return gvk.Group + "/" + gvk.Version + " " + gvk.Kind
}

func allow(warnings Warnings) *admissionv1.AdmissionResponse {
	return &admissionv1.AdmissionResponse{Allowed: true, Warnings: warnings}
}

func deny(code int32, msg string) *admissionv1.AdmissionResponse {
	reason := metav1.StatusReasonInternalError
	if code == http.StatusBadRequest {
		reason = metav1.StatusReasonBadRequest
	}
	return &admissionv1.AdmissionResponse{Result: &metav1.Status{Status: metav1.StatusFailure, Code: code, Reason: reason, Message: msg}}
}

// denyErr denies with err: an API status error as it is, any other error
// as 403 Forbidden with its message.
func denyErr(err error, warnings Warnings) *admissionv1.AdmissionResponse {
	var st apierrors.APIStatus
	if errors.As(err, &st) {
		s := st.Status()
		return &admissionv1.AdmissionResponse{Result: &s, Warnings: warnings}
	}
	return &admissionv1.AdmissionResponse{Warnings: warnings, Result: &metav1.Status{
		Status: metav1.StatusFailure, Code: http.StatusForbidden, Reason: metav1.StatusReasonForbidden, Message: err.Error(),
	}}
}

// readReview reads a review body into v, or says what HTTP status the
// request earns and why.
func readReview(w http.ResponseWriter, r *http.Request, v any) (int, error) {
	if r.Method != http.MethodPost {
		return http.StatusMethodNotAllowed, fmt.Errorf("webhook %s: %s; the apiserver POSTs reviews", r.URL.Path, r.Method)
	}
	if ct, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || ct != "application/json" {
		return http.StatusUnsupportedMediaType, fmt.Errorf("webhook %s: Content-Type %q, want application/json", r.URL.Path, r.Header.Get("Content-Type"))
	}
	body := http.MaxBytesReader(w, r.Body, maxReviewBytes)
	if err := json.NewDecoder(body).Decode(v); err != nil {
		return http.StatusBadRequest, fmt.Errorf("webhook %s: read the review: %w", r.URL.Path, err)
	}
	return 0, nil
}

func writeJSON(w http.ResponseWriter, v any, s *Server) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	if _, err := w.Write(b); err != nil {
		s.log.WithError(err).Debug("webhook: write the response")
	}
}
