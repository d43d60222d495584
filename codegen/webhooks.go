package codegen

import (
	"errors"
	"fmt"
	"go/token"
	"net/url"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/rein-k8s/rein/codegen/internal/webhooks"
)

// webhookPlan is what the API's webhook markers and conversion methods ask
// rein-gen for: typed registration helpers, the webhook configurations'
// manifest, and the conversion stanza of the CRDs of convertible kinds.
type webhookPlan struct {
	hooks []*admissionHook
	// conversions are the kinds with a Hub version and at least one
	// Convertible one, by group.
	conversions map[string][]*conversionKind
	// validatingName and mutatingName come from
	// +kubebuilder:webhookconfiguration markers ("" for the default).
	validatingName, mutatingName string
	service                      webhooks.Service
}

// admissionHook is one +kubebuilder:webhook marker, resolved to its kind.
type admissionHook struct {
	Config webhooks.Config
	// Path is where the server serves it: path=, or the path of url=.
	Path string
	Pkg  *apiPackage // the version the marker names
	Kind *kind
	// Operations are the admissionregistrationv1 constant names:
	// Create, Update, Delete.
	Operations []string
	pos        token.Position
}

// conversionKind is a kind whose versions convert through a hub.
type conversionKind struct {
	Group, Kind, Plural string
	Hub                 *apiPackage
	Spokes              []*apiPackage
}

// conversionPath is where a group's generated RegisterConversion serves and
// where the CRDs of its convertible kinds send ConversionReviews: one path
// per group, so that several groups can share a server.
func conversionPath(group string) string {
	return "/convert-" + strings.ReplaceAll(group, ".", "-")
}

// parseService reads --webhook-service: "namespace/name".
func parseService(s string) (webhooks.Service, error) {
	if s == "" {
		return webhooks.Service{Namespace: "system", Name: "webhook-service"}, nil
	}
	ns, name, ok := strings.Cut(s, "/")
	if !ok || !isDNSLabel(ns) || !isDNSLabel(name) {
		return webhooks.Service{}, fmt.Errorf("webhook service %q is not NAMESPACE/NAME (lower-case DNS labels), e.g. vm-system/vmcontroller-webhook", s)
	}
	return webhooks.Service{Namespace: ns, Name: name}, nil
}

func isDNSLabel(s string) bool { return len(s) <= 63 && dnsLabel.MatchString(s) }

// planWebhooks reads the webhook markers and conversion methods of pkgs and
// checks them: every problem is reported with its file and line, before
// anything is generated.
func planWebhooks(pkgs []*apiPackage, service webhooks.Service) (*webhookPlan, error) {
	plan := &webhookPlan{conversions: map[string][]*conversionKind{}, service: service}
	var errs []error
	type kindRef struct {
		pkg  *apiPackage
		kind *kind
	}
	byResource := map[string]kindRef{} // group/version/plural
	var known []string
	for _, p := range pkgs {
		for _, k := range p.Kinds {
			byResource[p.Group+"/"+p.Version+"/"+k.Plural] = kindRef{p, k}
			known = append(known, fmt.Sprintf("groups=%s,versions=%s,resources=%s", p.Group, p.Version, k.Plural))
		}
	}
	sort.Strings(known)
	seenName := map[string]token.Position{}
	seenPath := map[string]token.Position{}
	seenKind := map[string]token.Position{}
	var configNames = map[bool]token.Position{}
	for _, p := range pkgs {
		for _, m := range p.webhookMarkers {
			pos := p.fset.Position(m.Pos)
			fail := func(format string, args ...any) {
				errs = append(errs, fmt.Errorf("%s: marker %s: %s", pos, m.Text, fmt.Sprintf(format, args...)))
			}
			if strings.HasPrefix(m.Text, webhooks.ConfigurationMarkerPrefix) {
				c, err := webhooks.ParseConfigurationMarker(m.Text)
				if err != nil {
					fail("%v", err)
					continue
				}
				if other, ok := configNames[c.Mutating]; ok {
					fail("a second name for the %s configuration (the first is at %s)", sortOf(c.Mutating), other)
					continue
				}
				configNames[c.Mutating] = pos
				if c.Mutating {
					plan.mutatingName = c.Name
				} else {
					plan.validatingName = c.Name
				}
				continue
			}
			c, err := webhooks.ParseMarker(m.Text)
			if err != nil {
				fail("%v", err)
				continue
			}
			path, err := servedPath(c)
			if err != nil {
				fail("%v", err)
				continue
			}
			if len(c.Groups) != 1 || len(c.Versions) != 1 || len(c.Resources) != 1 || c.Groups[0] == "*" || c.Versions[0] == "*" || c.Resources[0] == "*" {
				fail("rein-gen generates a typed webhook per kind: name one group, one version and one resource, e.g. %s", firstOr(known, "groups=example.com,versions=v1,resources=ships"))
				continue
			}
			group := c.Groups[0]
			if group == "core" {
				group = ""
			}
			ref, ok := byResource[group+"/"+c.Versions[0]+"/"+c.Resources[0]]
			if !ok {
				fail("%s/%s, resource %s, is not a kind of the API packages given: the kinds are %s", c.Groups[0], c.Versions[0], c.Resources[0], strings.Join(known, "; "))
				continue
			}
			if err := webhooks.Check(c); err != nil {
				fail("%v", err)
				continue
			}
			if !slices.Contains(c.AdmissionReviewVersions, "v1") {
				fail("admissionReviewVersions=%s: rein's server speaks AdmissionReview v1: set admissionReviewVersions=v1", strings.Join(c.AdmissionReviewVersions, ";"))
				continue
			}
			ops, err := operations(c.Verbs)
			if err != nil {
				fail("%v", err)
				continue
			}
			// controller-tools' own construction, for the errors it finds
			// (matchPolicy, patch).
			var convErr error
			if c.Mutating {
				_, convErr = c.ToMutatingWebhook()
			} else {
				_, convErr = c.ToValidatingWebhook()
			}
			if convErr != nil {
				fail("%v", convErr)
				continue
			}
			if other, ok := seenName[c.Name]; ok {
				fail("name=%s is also the name of the webhook at %s: each webhook needs its own name", c.Name, other)
				continue
			}
			if other, ok := seenPath[path]; ok {
				fail("path %s is also the path of the webhook at %s: each webhook needs its own path", path, other)
				continue
			}
			kindKey := fmt.Sprintf("%s/%s/%s/%v", group, c.Versions[0], ref.kind.Name, c.Mutating)
			if other, ok := seenKind[kindKey]; ok {
				fail("a second %s webhook of %s %s (the first is at %s): put both checks in one function", sortOf(c.Mutating), ref.kind.Name, c.Versions[0], other)
				continue
			}
			seenName[c.Name], seenPath[path], seenKind[kindKey] = pos, pos, pos
			plan.hooks = append(plan.hooks, &admissionHook{Config: c, Path: path, Pkg: ref.pkg, Kind: ref.kind, Operations: ops, pos: pos})
		}
	}
	errs = append(errs, plan.findConversions(pkgs)...)
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	sort.Slice(plan.hooks, func(i, j int) bool { return plan.hooks[i].Config.Name < plan.hooks[j].Config.Name })
	return plan, nil
}

// servedPath is the path rein's server serves the webhook of c at: path=
// (the apiserver calls it through a Service), or the path of url= (a
// server the apiserver calls by URL: outside the cluster, a development
// machine).
func servedPath(c webhooks.Config) (string, error) {
	switch {
	case c.Path != "" && c.URL != "":
		return "", errors.New("path= and url= together: give path= for a Service (--webhook-service, or serviceName= and serviceNamespace=), or url= alone for a server the apiserver calls by URL")
	case c.URL != "":
		u, err := url.Parse(c.URL)
		if err != nil || u.Scheme != "https" || u.Host == "" || u.User != nil || u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || len(u.Path) < 2 || u.Path[0] != '/' {
			return "", fmt.Errorf("url=%s: want https://host[:port]/path, without user, query or fragment: the apiserver calls it, and the server serves the webhook at its path", c.URL)
		}
		return u.Path, nil
	case c.Path == "":
		return "", errors.New("no path=: give path=/… for a Service (--webhook-service, or serviceName= and serviceNamespace=), or url=https://host/path for a server the apiserver calls by URL")
	case !strings.HasPrefix(c.Path, "/"):
		return "", fmt.Errorf("path=%s does not begin with /", c.Path)
	}
	return c.Path, nil
}

func sortOf(mutating bool) string {
	if mutating {
		return "mutating"
	}
	return "validating"
}

func firstOr(list []string, d string) string {
	if len(list) > 0 {
		return list[0]
	}
	return d
}

// operations maps a marker's verbs to the admission operations rein's
// server handles.
func operations(verbs []string) ([]string, error) {
	var ops []string
	add := func(op string) {
		if !slices.Contains(ops, op) {
			ops = append(ops, op)
		}
	}
	for _, v := range verbs {
		switch strings.ToLower(v) {
		case "create":
			add("Create")
		case "update":
			add("Update")
		case "delete":
			add("Delete")
		case "*":
			add("Create")
			add("Update")
			add("Delete")
		case "connect":
			return nil, errors.New("verbs=connect: a CONNECT carries options, not the kind's object; use create, update and delete")
		default:
			return nil, fmt.Errorf("verbs: %q is not create, update or delete", v)
		}
	}
	if len(ops) == 0 {
		return nil, errors.New("verbs is empty: e.g. verbs=create;update")
	}
	return ops, nil
}

// findConversions finds the kinds whose versions convert through a hub:
// one version declares Hub(), every other declares ConvertTo and
// ConvertFrom.
func (plan *webhookPlan) findConversions(pkgs []*apiPackage) []error {
	var errs []error
	type version struct {
		pkg  *apiPackage
		kind *kind
	}
	byKind := map[string][]version{} // group/Kind
	for _, p := range pkgs {
		for _, k := range p.Kinds {
			byKind[p.Group+"/"+k.Name] = append(byKind[p.Group+"/"+k.Name], version{p, k})
		}
		// A conversion method on a type that is not a kind does nothing.
		var strays []string
		for typ, ms := range p.methods {
			_, isStruct := p.structs[typ]
			if !isStruct || slices.ContainsFunc(p.Kinds, func(k *kind) bool { return k.Name == typ }) {
				continue
			}
			for name, pos := range ms {
				strays = append(strays, fmt.Sprintf("%s: %s.%s: %s is not a kind of %s (not marked +kubebuilder:object:root=true or +genclient), so this method makes nothing convertible", pos, typ, name, typ, p.ImportPath))
			}
		}
		sort.Strings(strays)
		for _, s := range strays {
			errs = append(errs, errors.New(s))
		}
	}
	keys := make([]string, 0, len(byKind))
	for k := range byKind {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, key := range keys {
		versions := byKind[key]
		var hubs []version
		for _, v := range versions {
			if _, ok := v.pkg.methods[v.kind.Name]["Hub"]; ok {
				hubs = append(hubs, v)
			}
		}
		group, kindName, _ := strings.Cut(key, "/")
		switch {
		case len(hubs) > 1:
			errs = append(errs, fmt.Errorf("%s: %s of %s has two hub versions, %s and %s (%s): keep Hub() on the one version the others convert through",
				hubs[1].pkg.methods[kindName]["Hub"], kindName, group, hubs[0].pkg.Version, hubs[1].pkg.Version, hubs[0].pkg.methods[kindName]["Hub"]))
			continue
		case len(hubs) == 0:
			for _, v := range versions {
				ms := v.pkg.methods[kindName]
				for _, name := range []string{"ConvertTo", "ConvertFrom"} {
					if pos, ok := ms[name]; ok {
						errs = append(errs, fmt.Errorf("%s: %s %s declares %s but no version of %s is the hub: declare `func (*%s) Hub() {}` in the version it converts through",
							pos, kindName, v.pkg.Version, name, kindName, kindName))
						break
					}
				}
			}
			continue
		}
		hub := hubs[0]
		conv := &conversionKind{Group: group, Kind: kindName, Plural: hub.kind.Plural, Hub: hub.pkg}
		for _, v := range versions {
			if v.pkg == hub.pkg {
				continue
			}
			ms := v.pkg.methods[kindName]
			var missing []string
			for _, name := range []string{"ConvertTo", "ConvertFrom"} {
				if _, ok := ms[name]; !ok {
					missing = append(missing, name)
				}
			}
			if len(missing) > 0 {
				errs = append(errs, fmt.Errorf("%s: %s %s has no %s: %s %s is the hub, so every other version converts to and from it: write `func (x *%s) ConvertTo(hub conversion.Hub) error` and `func (x *%s) ConvertFrom(hub conversion.Hub) error` (package github.com/rein-k8s/rein/pkg/conversion)",
					v.kind.pos, kindName, v.pkg.Version, strings.Join(missing, " or "), kindName, hub.pkg.Version, kindName, kindName))
				continue
			}
			conv.Spokes = append(conv.Spokes, v.pkg)
		}
		if len(conv.Spokes) > 0 {
			plan.conversions[group] = append(plan.conversions[group], conv)
		}
	}
	return errs
}

// crdFile is the name the CRD generator gives a kind's manifest.
func crdFile(group, plural string) string { return group + "_" + plural + ".yaml" }

// addConversions gives the CRD manifests of convertible kinds the webhook
// conversion stanza.
func (plan *webhookPlan) addConversions(files map[string][]byte) error {
	for group, kinds := range plan.conversions {
		for _, k := range kinds {
			name := crdFile(group, k.Plural)
			crd, ok := files[name]
			if !ok {
				return fmt.Errorf("codegen: the CRD of %s (%s) was not generated", k.Kind, name)
			}
			out, err := webhooks.AddConversion(crd, webhooks.Conversion(plan.service, conversionPath(group)))
			if err != nil {
				return fmt.Errorf("codegen: the conversion stanza of %s: %w", name, err)
			}
			files[name] = out
		}
	}
	return nil
}

// webhookManifestFile is the file of the webhook configurations in
// --webhook-dir.
const webhookManifestFile = "webhooks.yaml"

// manifest renders the webhook configurations, header first; nil when
// there are no webhook markers.
func (plan *webhookPlan) manifest() ([]byte, error) {
	var cfgs []webhooks.Config
	for _, h := range plan.hooks {
		cfgs = append(cfgs, h.Config)
	}
	out, err := webhooks.Manifests(cfgs, webhooks.Options{Service: plan.service, ValidatingName: plan.validatingName, MutatingName: plan.mutatingName})
	if err != nil || out == nil {
		return nil, err
	}
	return append([]byte(ownedYAMLHeader+"\n"), out...), nil
}

// webhookHelpers renders the typed registration helpers: per kind with
// webhook markers a <kind>_webhooks.go in its version's controllers
// package, and per group with convertible kinds a conversion.go in the
// group's.
func (plan *webhookPlan) helpers(dir, importBase, header string) (map[string][]byte, error) {
	files := map[string][]byte{}
	type kindHooks struct {
		kindData
		Validator, Defaulter *admissionHook
	}
	byKind := map[string]*kindHooks{}
	for _, h := range plan.hooks {
		file := filepath.Join(dir, h.Pkg.GroupPackage(), h.Pkg.Version, strings.ToLower(h.Kind.Name)+"_webhooks.go")
		kh := byKind[file]
		if kh == nil {
			kh = &kindHooks{kindData: kindData{
				versionData: versionData{Version: h.Pkg.Version, APIImport: h.Pkg.ImportPath, APIAlias: apiAlias(h.Pkg.GroupPackage(), h.Pkg.Version)},
				Group:       h.Pkg.Group, kind: h.Kind,
			}}
			byKind[file] = kh
		}
		if h.Config.Mutating {
			kh.Defaulter = h
		} else {
			kh.Validator = h
		}
	}
	for file, kh := range byKind {
		out, err := renderWith(header, "webhooks", kindWebhooksTemplate, kh)
		if err != nil {
			return nil, fmt.Errorf("codegen: %s: %w", file, err)
		}
		files[file] = out
	}
	for group, kinds := range plan.conversions {
		data := conversionData{Group: group, Path: conversionPath(group)}
		versions := map[string]*apiPackage{}
		for _, k := range kinds {
			data.Package = k.Hub.GroupPackage()
			versions[k.Hub.Version] = k.Hub
			data.Kinds = append(data.Kinds, conversionKindData{Kind: k.Kind, Hub: apiAlias(k.Hub.GroupPackage(), k.Hub.Version)})
			for _, s := range k.Spokes {
				versions[s.Version] = s
				data.Kinds[len(data.Kinds)-1].Spokes = append(data.Kinds[len(data.Kinds)-1].Spokes, apiAlias(s.GroupPackage(), s.Version))
			}
		}
		for _, v := range sortedVersions(versions) {
			data.Versions = append(data.Versions, versionData{Version: v.Version, APIImport: v.ImportPath, APIAlias: apiAlias(v.GroupPackage(), v.Version)})
		}
		file := filepath.Join(dir, data.Package, "conversion.go")
		out, err := renderWith(header, "conversion", conversionTemplate, data)
		if err != nil {
			return nil, fmt.Errorf("codegen: %s: %w", file, err)
		}
		files[file] = out
	}
	return files, nil
}

func sortedVersions(m map[string]*apiPackage) []*apiPackage {
	out := make([]*apiPackage, 0, len(m))
	for _, p := range m {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Version < out[j].Version })
	return out
}

type conversionData struct {
	Group, Package, Path string
	Versions             []versionData
	Kinds                []conversionKindData
}

type conversionKindData struct {
	Kind, Hub string
	Spokes    []string
}
