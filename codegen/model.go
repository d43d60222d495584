package codegen

import (
	"bytes"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"unicode"

	"github.com/rein-k8s/rein/codegen/internal/crds"
)

// apiPackage is one group/version package of API types, as its
// hand-written files describe it: files rein-gen wrote earlier are not
// read (see ownedFile), so that the output is a function of the API alone.
type apiPackage struct {
	ImportPath string
	Dir        string
	Name       string // Go package name, e.g. v1alpha1
	Group      string // from +groupName, e.g. vm.rein.dev
	Version    string // the package name
	Kinds      []*kind
	// GroupGoName is the +groupGoName marker's value, if any.
	GroupGoNameMarker string

	// goGroup and groupPackage are decided for all packages at once (see
	// nameGroups): "vm.rein.dev" → "Vm", "vm".
	goGroup, groupPackage string

	// What the hand-written files declare at package level.
	HasAddToScheme  bool // AddToScheme (rein-gen writes a registration file when false)
	HasSchemeGV     bool // SchemeGroupVersion (client-gen's code uses it)
	HasGroupVersion bool // GroupVersion (kubebuilder's name for it)
	HasResource     bool // func Resource (listers use it)
	HasKindFunc     bool // func Kind
	HasGroupName    bool // const GroupName
	// DeepCopyPackage is true when the package asks for deepcopy of all its
	// types: +k8s:deepcopy-gen=package or +kubebuilder:object:generate=true.
	DeepCopyPackage bool
	// TypeDeepCopy is true when some type asks for deepcopy itself
	// (+k8s:deepcopy-gen=true): then the package gets no package-wide tag.
	TypeDeepCopy bool
	// RootTypes are the types marked +kubebuilder:object:root (kinds and
	// lists): they get runtime.Object's DeepCopyObject.
	RootTypes []string
	// NoDeepCopy are the types marked +kubebuilder:object:generate=false.
	NoDeepCopy []string

	// files are the hand-written files, parsed; fset positions them.
	files []*ast.File
	fset  *token.FileSet
	// structs are the package's struct types by name.
	structs map[string]*ast.StructType
	// declared holds every package-level name of the hand-written files.
	declared map[string]bool
	// methods are the Hub, ConvertTo and ConvertFrom methods declared, by
	// receiver type: what makes a kind's versions convertible.
	methods map[string]map[string]token.Position
	// webhookMarkers are the +kubebuilder:webhook and
	// +kubebuilder:webhookconfiguration lines, from any comment of the
	// hand-written files (controller-tools reads them as package markers).
	webhookMarkers []marker
	// markerWarnings are the markers of other tools (see checkMarkers).
	markerWarnings []markerWarning
}

// kind is one type rein-gen generates a client and controller for: a
// struct embedding metav1.ObjectMeta marked +genclient or
// +kubebuilder:object:root=true.
type kind struct {
	Name       string // VirtualMachine
	Plural     string // virtualmachines
	Namespaced bool
	HasStatus  bool
	HasList    bool // the hand-written files define <Name>List
	StatusType string
	// GenClient is true when the type carries +genclient itself; otherwise
	// rein-gen adds the tag for code-generator in memory.
	GenClient bool
	// RootMarker is +kubebuilder:object:root=true on the type.
	RootMarker bool
	// DeepCopyObject is true when the type asks for runtime.Object's
	// DeepCopyObject itself.
	DeepCopyObject bool
	// StorageVersion is +kubebuilder:storageversion on the type.
	StorageVersion bool
	pos            token.Position
}

// GoGroup is the Go name of the group's accessor: "vm.rein.dev" → "Vm".
func (p *apiPackage) GoGroup() string {
	if p.goGroup != "" {
		return p.goGroup
	}
	return goName(strings.SplitN(p.Group, ".", 2)[0])
}

// GroupPackage is the package name of the group's controllers: "vm".
func (p *apiPackage) GroupPackage() string {
	if p.groupPackage != "" {
		return p.groupPackage
	}
	return pkgName(strings.SplitN(p.Group, ".", 2)[0])
}

func goName(s string) string {
	var b strings.Builder
	upper := true
	for _, r := range s {
		if r == '-' || r == '_' || r == '.' {
			upper = true
			continue
		}
		if upper {
			r = unicode.ToUpper(r)
			upper = false
		}
		b.WriteRune(r)
	}
	return b.String()
}

func pkgName(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '-' || r == '_' || r == '.' {
			return -1
		}
		return unicode.ToLower(r)
	}, s)
}

// plural is a kind's resource name: controller-tools' default, so that the
// CRD, the clientset (given it as a plural exception) and rein's
// controllers all use one name. +kubebuilder:resource:path overrides it.
func plural(kind string) string { return crds.DefaultPlural(kind) }

// marker is one "+name=value" (or "+name") comment line.
type marker struct {
	Name, Value string
	Text        string // the whole line after "//", trimmed
	Pos         token.Pos
}

// markerList reads the markers of comment groups, one per line, in order.
func markerList(groups ...*ast.CommentGroup) []marker {
	var out []marker
	for _, g := range groups {
		if g == nil {
			continue
		}
		for _, c := range g.List {
			text := strings.TrimSpace(strings.TrimPrefix(strings.TrimPrefix(c.Text, "//"), "/*"))
			if !strings.HasPrefix(text, "+") {
				continue
			}
			name, value, _ := strings.Cut(text[1:], "=")
			out = append(out, marker{Name: strings.TrimSpace(name), Value: strings.TrimSpace(value), Text: text, Pos: c.Pos()})
		}
	}
	return out
}

// markers is markerList as a map; a later line wins.
func markers(groups ...*ast.CommentGroup) map[string]string {
	out := map[string]string{}
	for _, m := range markerList(groups...) {
		out[m.Name] = m.Value
	}
	return out
}

// resourceMarker reads the arguments of +kubebuilder:resource:a=b,c={d,e}.
func resourceMarker(ms map[string]string) map[string]string {
	out := map[string]string{}
	for name, value := range ms {
		arg, ok := strings.CutPrefix(name, "kubebuilder:resource:")
		if !ok {
			continue
		}
		// The first argument is in the name: "kubebuilder:resource:path" = "ships,scope=Cluster".
		args := splitArgs(arg + "=" + value)
		for _, a := range args {
			k, v, _ := strings.Cut(a, "=")
			out[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	}
	return out
}

// splitArgs splits marker arguments at commas outside braces.
func splitArgs(s string) []string {
	var out []string
	depth, start := 0, 0
	for i, r := range s {
		switch r {
		case '{':
			depth++
		case '}':
			depth--
		case ',':
			if depth == 0 {
				out = append(out, s[start:i])
				start = i + 1
			}
		}
	}
	return append(out, s[start:])
}

// ownedHeader is the line every file rein-gen writes carries; a file with it
// is rein-gen's to rewrite or remove, and never input.
var ownedHeader = regexp.MustCompile(`(?m)^// Code generated by rein-gen\. DO NOT EDIT\.$`)

// ownedYAMLHeader marks the CRD manifests rein-gen writes.
const ownedYAMLHeader = "# Code generated by rein-gen. DO NOT EDIT."

// ownedFile reports whether content was written by rein-gen: its header,
// before the package clause, says so.
func ownedFile(content []byte) bool {
	head := content
	if i := bytes.Index(content, []byte("\npackage ")); i >= 0 {
		head = content[:i]
	}
	return ownedHeader.Match(head)
}

// foreignDeepCopy reports whether content is a deepcopy file another
// generator wrote (controller-gen or deepcopy-gen run by hand), which
// rein-gen's zz_generated.deepcopy.go replaces.
func foreignDeepCopy(content []byte) bool {
	return regexp.MustCompile(`(?m)^// Code generated by (controller-gen|deepcopy-gen)\. DO NOT EDIT\.$`).Match(content)
}

// sourceFile is one hand-written Go file of a folder.
type sourceFile struct {
	name string // base name
	src  []byte
}

// handWritten returns the hand-written Go files of dir, in name order:
// not tests, not files rein-gen wrote (its header), not a deepcopy file of
// another generator (rein-gen's replaces it). Every reader of an API or
// shared-types folder uses it, so they all see the same input.
func handWritten(dir string) ([]sourceFile, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []sourceFile
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
			continue
		}
		src, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			return nil, err
		}
		if ownedFile(src) || (name == deepCopyFile && foreignDeepCopy(src)) {
			continue
		}
		out = append(out, sourceFile{name: name, src: src})
	}
	return out, nil
}

// loadPackage parses the hand-written Go files of one API package (without
// type checking) and reads its kinds. Files rein-gen wrote (its header) and
// a deepcopy file of another generator are skipped: they are output, not
// input. Positions name the files under display, the folder as messages
// show it (relative to the module's root).
func loadPackage(importPath, dir, display string) (*apiPackage, error) {
	fset := token.NewFileSet()
	sources, err := handWritten(dir)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("package %s: folder %s does not exist", importPath, display)
		}
		return nil, fmt.Errorf("package %s: %w", importPath, err)
	}
	p := &apiPackage{ImportPath: importPath, Dir: dir, fset: fset, structs: map[string]*ast.StructType{}, declared: map[string]bool{},
		methods: map[string]map[string]token.Position{}}
	var syntaxErrs []error
	for _, sf := range sources {
		f, err := parser.ParseFile(fset, filepath.Join(display, sf.name), sf.src, parser.ParseComments)
		if err != nil {
			syntaxErrs = append(syntaxErrs, err)
			continue
		}
		p.files = append(p.files, f)
	}
	if len(syntaxErrs) > 0 {
		return nil, fmt.Errorf("package %s has syntax errors:\n%w", importPath, errors.Join(syntaxErrs...))
	}
	if len(p.files) == 0 {
		return nil, fmt.Errorf("package %s: no hand-written Go files in %s", importPath, display)
	}
	type candidate struct {
		name string
		m    map[string]string
		st   *ast.StructType
		pos  token.Position
	}
	var candidates []candidate
	for _, f := range p.files {
		if p.Name != "" && f.Name.Name != p.Name {
			return nil, fmt.Errorf("package %s: files of two packages in %s: %s and %s", importPath, dir, p.Name, f.Name.Name)
		}
		p.Name = f.Name.Name
		// The package doc may sit in any file's comments above "package".
		for _, cg := range f.Comments {
			if cg.End() >= f.Package {
				continue
			}
			m := markers(cg)
			if g, ok := m["groupName"]; ok {
				p.Group = g
			}
			if g, ok := m["groupGoName"]; ok {
				p.GroupGoNameMarker = g
			}
			if m["k8s:deepcopy-gen"] == "package" || m["kubebuilder:object:generate"] == "true" {
				p.DeepCopyPackage = true
			}
		}
		for _, cg := range f.Comments {
			for _, m := range markerList(cg) {
				if strings.HasPrefix(m.Text, "+kubebuilder:webhook:") || strings.HasPrefix(m.Text, "+kubebuilder:webhookconfiguration:") {
					p.webhookMarkers = append(p.webhookMarkers, m)
				}
			}
		}
		for _, decl := range f.Decls {
			switch d := decl.(type) {
			case *ast.FuncDecl:
				if d.Recv == nil {
					p.declared[d.Name.Name] = true
				} else if name := d.Name.Name; name == "Hub" || name == "ConvertTo" || name == "ConvertFrom" {
					recv := typeName(d.Recv.List[0].Type)
					if p.methods[recv] == nil {
						p.methods[recv] = map[string]token.Position{}
					}
					p.methods[recv][name] = fset.Position(d.Pos())
				}
			case *ast.GenDecl:
				for _, spec := range d.Specs {
					switch s := spec.(type) {
					case *ast.ValueSpec:
						for _, n := range s.Names {
							p.declared[n.Name] = true
						}
					case *ast.TypeSpec:
						p.declared[s.Name.Name] = true
						st, ok := s.Type.(*ast.StructType)
						if !ok {
							continue
						}
						p.structs[s.Name.Name] = st
						m := markers(p.typeDocs(f, d, s)...)
						if m["k8s:deepcopy-gen"] == "true" {
							p.TypeDeepCopy = true
						}
						if isRoot(m) {
							p.RootTypes = append(p.RootTypes, s.Name.Name)
						}
						if m["kubebuilder:object:generate"] == "false" {
							p.NoDeepCopy = append(p.NoDeepCopy, s.Name.Name)
						}
						_, genclient := m["genclient"]
						if genclient || isRoot(m) {
							candidates = append(candidates, candidate{s.Name.Name, m, st, fset.Position(s.Pos())})
						}
					}
				}
			}
		}
	}
	p.HasAddToScheme = p.declared["AddToScheme"]
	p.HasSchemeGV = p.declared["SchemeGroupVersion"]
	p.HasGroupVersion = p.declared["GroupVersion"]
	p.HasResource = p.declared["Resource"]
	p.HasKindFunc = p.declared["Kind"]
	p.HasGroupName = p.declared["GroupName"]
	p.Version = p.Name
	for _, c := range candidates {
		var hasObjectMeta bool
		k := &kind{Name: c.name, Plural: plural(c.name), Namespaced: true, pos: c.pos}
		for _, field := range c.st.Fields.List {
			switch {
			case len(field.Names) == 0 && typeName(field.Type) == "ObjectMeta":
				hasObjectMeta = true
			case len(field.Names) == 1 && field.Names[0].Name == "Status":
				k.HasStatus = true
				k.StatusType = typeName(field.Type)
			}
		}
		_, k.GenClient = c.m["genclient"]
		k.RootMarker = isRoot(c.m)
		if !hasObjectMeta {
			if k.GenClient {
				// Reported by validate: a +genclient type must be an object.
				k.Plural = ""
				p.Kinds = append(p.Kinds, k)
			}
			continue // a List type marked root: not a kind
		}
		if _, ok := c.m["genclient:nonNamespaced"]; ok {
			k.Namespaced = false
		}
		res := resourceMarker(c.m)
		if res["scope"] == "Cluster" {
			k.Namespaced = false
		}
		if res["path"] != "" {
			k.Plural = res["path"]
		}
		if _, ok := c.m["genclient:noStatus"]; ok {
			k.HasStatus = false
		}
		k.DeepCopyObject = strings.Contains(c.m["k8s:deepcopy-gen:interfaces"], "runtime.Object")
		k.StorageVersion = hasKey(c.m, "kubebuilder:storageversion")
		_, k.HasList = p.structs[c.name+"List"]
		p.Kinds = append(p.Kinds, k)
	}
	sort.Slice(p.Kinds, func(i, j int) bool { return p.Kinds[i].Name < p.Kinds[j].Name })
	return p, nil
}

// isRoot: +kubebuilder:object:root or +kubebuilder:object:root=true.
func isRoot(m map[string]string) bool {
	v, ok := m["kubebuilder:object:root"]
	return ok && v != "false"
}

// typeDocs are the comment groups whose markers apply to a type: its doc
// comment and, as controller-tools and code-generator read them, the group
// just above it after one blank line (kubebuilder writes its markers there).
func (p *apiPackage) typeDocs(f *ast.File, d *ast.GenDecl, s *ast.TypeSpec) []*ast.CommentGroup {
	doc := s.Doc
	if doc == nil {
		doc = d.Doc
	}
	top := d.Pos()
	if doc != nil {
		top = doc.Pos()
	}
	if len(d.Specs) > 1 && s.Doc != nil {
		top = s.Doc.Pos()
	}
	line := p.fset.Position(top).Line
	for _, cg := range f.Comments {
		if end := p.fset.Position(cg.End()).Line; end == line-2 {
			return []*ast.CommentGroup{cg, doc}
		}
	}
	return []*ast.CommentGroup{doc}
}

func hasKey(m map[string]string, k string) bool { _, ok := m[k]; return ok }

// typeName is the name of a (possibly qualified or pointer) type
// expression: metav1.ObjectMeta → ObjectMeta.
func typeName(e ast.Expr) string {
	switch t := e.(type) {
	case *ast.Ident:
		return t.Name
	case *ast.SelectorExpr:
		return t.Sel.Name
	case *ast.StarExpr:
		return typeName(t.X)
	}
	return ""
}
