package scaffold

import (
	"bytes"
	_ "embed"
	"fmt"
	"go/format"
	"strings"
	"text/template"

	"github.com/gobuffalo/flect"

	"github.com/rein-k8s/rein/codegen/internal/crds"
)

// file is one rendered file of a project.
type file struct {
	path, content string
}

// project is what the templates see.
type project struct {
	*state
	GoMinor string // "1.26", the golang image's tag
	Groups  []*groupView
	Kinds   []*kindView // every kind in every version, in the state's order
	// Handled are the kinds' first versions: those with handlers.
	Handled                      []*kindView
	Webhooks                     []*kindView // kinds with admission webhooks
	Validating, Mutating         bool
	Converted                    []*kindView // first versions of kinds with more than one version
	HasWebhooks                  bool        // admission or conversion
	ConversionGroups             []*groupView
	CRDFiles                     []string
	ValidatingName, MutatingName string
}

type groupView struct {
	Name, Full    string // webapp, webapp.example.com
	GoName        string // Webapp
	Factory       string // import path of the group's generated factory
	FactoryAlias  string // webappfactory
	FactoryVar    string // webappFactory
	Handlers      string // import path of internal/controller/<group>
	HandlersAlias string // webappcontroller
	Handled       []*kindView
	Conversion    bool
}

type kindView struct {
	Kind
	P                      *project
	G                      *groupView
	FullGroup              string // webapp.example.com
	Plural, PluralGo       string // guestbooks, Guestbooks
	Lower                  string // guestbook
	VersionGo              string // V1
	API, APIAlias          string // import path and alias of the API package
	Ctrl, CtrlAlias        string // the version's generated controllers
	First                  bool   // the kind's first version: storage, hub, handlers
	Hub                    *kindView
	Versions               int // how many versions the kind has
	Validating, Defaulting bool
	// ValidatingConfig and MutatingConfig put the project's one
	// +kubebuilder:webhookconfiguration marker of each sort in this
	// kind's webhook file.
	ValidatingConfig, MutatingConfig bool
}

// Namespace is "default" for a namespaced kind and "" for a cluster-scoped one.
func (k *kindView) Namespace() string {
	if k.ClusterScoped {
		return ""
	}
	return "default"
}

// Key is the queue key of the test object "first".
func (k *kindView) Key() string {
	if k.ClusterScoped {
		return "first"
	}
	return "default/first"
}

// CRDName is <plural>.<group>.
func (k *kindView) CRDName() string { return k.Plural + "." + k.FullGroup }

// Dir is the API package's folder.
func (k *kindView) Dir() string { return "api/" + k.Group + "/" + k.Version }

func view(st *state) *project {
	p := &project{state: st, GoMinor: GoVersion[:strings.LastIndex(GoVersion, ".")]}
	groups := map[string]*groupView{}
	first := map[string]*kindView{}
	for i := range st.Kinds {
		k := st.Kinds[i]
		g := groups[k.Group]
		if g == nil {
			g = &groupView{
				Name: k.Group, Full: k.Group + "." + st.Domain, GoName: strings.ToUpper(k.Group[:1]) + k.Group[1:],
				Factory: st.Module + "/generated/controllers/" + k.Group, FactoryAlias: k.Group + "factory", FactoryVar: k.Group + "Factory",
				Handlers: st.Module + "/internal/controller/" + k.Group, HandlersAlias: k.Group + "controller",
			}
			groups[k.Group] = g
			p.Groups = append(p.Groups, g)
		}
		v := &kindView{
			Kind: k, P: p, G: g, FullGroup: g.Full,
			Plural: crds.DefaultPlural(k.Kind), PluralGo: flect.Pluralize(k.Kind), Lower: strings.ToLower(k.Kind),
			VersionGo: strings.ToUpper(k.Version[:1]) + k.Version[1:],
			API:       st.Module + "/api/" + k.Group + "/" + k.Version, APIAlias: k.Group + k.Version,
			Ctrl: st.Module + "/generated/controllers/" + k.Group + "/" + k.Version, CtrlAlias: k.Group + k.Version + "ctrl",
		}
		id := k.Group + "/" + k.Kind
		if h := first[id]; h != nil {
			v.Hub = h
		} else {
			v.First, v.Hub = true, v
			first[id] = v
			g.Handled = append(g.Handled, v)
			p.Handled = append(p.Handled, v)
			p.CRDFiles = append(p.CRDFiles, g.Full+"_"+v.Plural+".yaml")
		}
		v.Hub.Versions++
		v.Validating, v.Defaulting = hasHook(k, "validating"), hasHook(k, "defaulting")
		if v.Validating && !p.Validating {
			v.ValidatingConfig, p.Validating = true, true
		}
		if v.Defaulting && !p.Mutating {
			v.MutatingConfig, p.Mutating = true, true
		}
		if v.Validating || v.Defaulting {
			p.Webhooks = append(p.Webhooks, v)
		}
		p.Kinds = append(p.Kinds, v)
	}
	for _, k := range p.Handled {
		if k.Versions > 1 {
			p.Converted = append(p.Converted, k)
			if !k.G.Conversion {
				k.G.Conversion = true
				p.ConversionGroups = append(p.ConversionGroups, k.G)
			}
		}
	}
	p.HasWebhooks = len(p.Webhooks) > 0 || len(p.Converted) > 0
	return p
}

func hasHook(k Kind, w string) bool {
	for _, h := range k.Webhooks {
		if h == w {
			return true
		}
	}
	return false
}

// render is every file of the project st describes.
func render(st *state) ([]file, error) {
	p := view(st)
	var files []file
	var errs []string
	add := func(path, name string, data any) {
		var b bytes.Buffer
		if err := templates.ExecuteTemplate(&b, name, data); err != nil {
			errs = append(errs, fmt.Sprintf("%s: %v", path, err))
			return
		}
		content := b.Bytes()
		if strings.HasSuffix(path, ".go") {
			formatted, err := format.Source(content)
			if err != nil {
				errs = append(errs, fmt.Sprintf("%s: %v\n%s", path, err, content))
				return
			}
			content = formatted
		}
		files = append(files, file{path: path, content: string(content)})
	}
	add("main.go", "main.go", p)
	add("setup.go", "setup.go", p)
	add("Makefile", "Makefile", p)
	add("Dockerfile", "Dockerfile", p)
	add(".dockerignore", "dockerignore", p)
	add(".gitignore", "gitignore", p)
	add("README.md", "README.md", p)
	add("deploy/kustomization.yaml", "deploy/kustomization.yaml", p)
	add("deploy/namespace.yaml", "deploy/namespace.yaml", p)
	add("deploy/serviceaccount.yaml", "deploy/serviceaccount.yaml", p)
	add("deploy/deployment.yaml", "deploy/deployment.yaml", p)
	add("deploy/pdb.yaml", "deploy/pdb.yaml", p)
	add("deploy/metrics-service.yaml", "deploy/metrics-service.yaml", p)
	add("deploy/crd/kustomization.yaml", "deploy/crd/kustomization.yaml", p)
	add("deploy/webhook/kustomization.yaml", "deploy/webhook/kustomization.yaml", p)
	if p.HasWebhooks {
		add("deploy/webhook/service.yaml", "deploy/webhook/service.yaml", p)
	}
	add("deploy/fencing/kustomization.yaml", "deploy/fencing/kustomization.yaml", p)
	add("deploy/fencing/fencing.yaml", "deploy/fencing/fencing.yaml", p)

	seen := map[string]bool{}
	for _, k := range p.Kinds {
		if !seen[k.Dir()] {
			seen[k.Dir()] = true
			add(k.Dir()+"/doc.go", "api/doc.go", k)
		}
		add(k.Dir()+"/"+k.Lower+"_types.go", "api/types.go", k)
		if k.Validating || k.Defaulting {
			add(k.Dir()+"/"+k.Lower+"_webhooks.go", "api/webhooks.go", k)
		}
		if k.First && k.Conversion {
			add(k.Dir()+"/"+k.Lower+"_hub.go", "api/hub.go", k)
		}
		if !k.First {
			add(k.Dir()+"/"+k.Lower+"_conversion.go", "api/conversion.go", k)
		}
		ctrl := "internal/controller/" + k.Group + "/"
		if !seen[ctrl] {
			seen[ctrl] = true
			add(ctrl+"doc.go", "controller/doc.go", k.G)
			add(ctrl+"suite_test.go", "controller/suite_test.go", k.G)
		}
		if k.First {
			add(ctrl+k.Lower+".go", "controller/kind.go", k)
			add(ctrl+k.Lower+"_test.go", "controller/kind_test.go", k)
			add(ctrl+k.Lower+"_integration_test.go", "controller/kind_integration_test.go", k)
		}
		if k.Validating {
			add(ctrl+k.Lower+"_validation.go", "controller/validation.go", k)
		}
		if k.Defaulting {
			add(ctrl+k.Lower+"_defaulting.go", "controller/defaulting.go", k)
		}
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("scaffold: a template failed (a bug in rein-gen):\n%s", strings.Join(errs, "\n"))
	}
	return files, nil
}

// tmplText holds every template, each a {{define}} named after the file
// it renders.
//
//go:embed templates.tmpl
var tmplText string

var templates = template.Must(template.New("").Funcs(template.FuncMap{
	"quote": func(s string) string { return fmt.Sprintf("%q", s) },
}).Parse(tmplText))
