package codegen

import (
	"errors"
	"fmt"
	"go/ast"
	"go/token"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/rein-k8s/rein/codegen/internal/crds"
)

// validate checks the API packages before anything is generated: every
// problem it finds is reported at once, with the file, line and fix, and
// nothing is written. It also decides the groups' Go names (nameGroups).
// It reads syntax only, so it answers in milliseconds; what needs types is
// left to the CRD generator, which runs next and also writes nothing on
// an error.
func validate(pkgs []*apiPackage) error {
	var errs []error
	seenGV := map[string]string{}
	for _, p := range pkgs {
		errs = append(errs, p.validate()...)
		if p.Group != "" {
			gv := p.Group + "/" + p.Version
			if other, ok := seenGV[gv]; ok {
				errs = append(errs, fmt.Errorf("packages %s and %s are both %s: give each version of a group its own package", other, p.ImportPath, gv))
			}
			seenGV[gv] = p.ImportPath
		}
	}
	errs = append(errs, checkStorageVersions(pkgs)...)
	if err := nameGroups(pkgs); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// dnsSubdomain is what an API group must be (RFC 1123, lower case).
var dnsSubdomain = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)

// versionName is what client-gen and the apiserver accept as a version.
var versionName = regexp.MustCompile(`^v[0-9]+((alpha|beta)[0-9]+)?$`)

func (p *apiPackage) validate() []error {
	var errs []error
	switch {
	case p.Group == "":
		errs = append(errs, fmt.Errorf("package %s has no +groupName marker: add `// +groupName=example.com` above `package %s` in its doc.go", p.ImportPath, p.Name))
	case !dnsSubdomain.MatchString(p.Group):
		errs = append(errs, fmt.Errorf("package %s: +groupName=%s is not a valid API group: use lower-case letters, digits, '-' and '.', e.g. fleet.example.com", p.ImportPath, p.Group))
	}
	if !versionName.MatchString(p.Version) {
		errs = append(errs, fmt.Errorf("package %s: its name %q is the API version, and must look like v1, v2beta1 or v1alpha1: rename the package (and its folder)", p.ImportPath, p.Version))
	}
	if p.GroupGoNameMarker != "" && !token.IsIdentifier(p.GroupGoNameMarker) {
		errs = append(errs, fmt.Errorf("package %s: +groupGoName=%s is not a Go identifier: use letters and digits, e.g. +groupGoName=AuditTrail", p.ImportPath, p.GroupGoNameMarker))
	}
	if len(p.Kinds) == 0 {
		errs = append(errs, fmt.Errorf("package %s has no kind: mark each kind (a struct embedding metav1.TypeMeta and metav1.ObjectMeta) with `// +genclient` or `// +kubebuilder:object:root=true` (and `// +genclient:nonNamespaced` or `// +kubebuilder:resource:scope=Cluster` for cluster-scoped kinds)", p.ImportPath))
	}
	if p.HasAddToScheme && !p.HasSchemeGV && !p.HasGroupVersion {
		errs = append(errs, fmt.Errorf("package %s defines AddToScheme but neither SchemeGroupVersion nor GroupVersion: declare `var SchemeGroupVersion = schema.GroupVersion{Group: %q, Version: %q}`, or remove AddToScheme and let rein-gen write the registration", p.ImportPath, p.Group, p.Version))
	}
	for _, k := range p.Kinds {
		if k.Plural == "" {
			errs = append(errs, fmt.Errorf(`%s: type %s is marked +genclient but does not embed metav1.ObjectMeta: add the field "metav1.ObjectMeta `+"`json:\"metadata,omitempty\"`"+`"`, k.pos, k.Name))
			continue
		}
		if !dnsLabel.MatchString(k.Plural) {
			errs = append(errs, fmt.Errorf("%s: kind %s has the resource name %q, which is not a lower-case DNS label: fix +kubebuilder:resource:path", k.pos, k.Name, k.Plural))
		}
		if st := p.structs[k.Name]; st != nil && !embeds(st, "TypeMeta") {
			errs = append(errs, fmt.Errorf(`%s: kind %s does not embed metav1.TypeMeta: add the field "metav1.TypeMeta `+"`json:\",inline\"`"+`"`, k.pos, k.Name))
		}
		if k.HasList {
			if st := p.structs[k.Name+"List"]; st != nil && !hasItems(st, k.Name) {
				errs = append(errs, fmt.Errorf("%s: %sList must have the field `Items []%s`", p.fset.Position(st.Pos()), k.Name, k.Name))
			}
		}
	}
	errs = append(errs, p.checkMarkers()...)
	errs = append(errs, p.checkFields()...)
	return errs
}

var dnsLabel = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)

func embeds(st *ast.StructType, name string) bool {
	for _, f := range st.Fields.List {
		if len(f.Names) == 0 && typeName(f.Type) == name {
			return true
		}
	}
	return false
}

func hasItems(st *ast.StructType, kind string) bool {
	for _, f := range st.Fields.List {
		if len(f.Names) == 1 && f.Names[0].Name == "Items" {
			if at, ok := f.Type.(*ast.ArrayType); ok && at.Len == nil && typeName(at.Elt) == kind {
				_, ptr := at.Elt.(*ast.StarExpr)
				return !ptr
			}
		}
	}
	return false
}

// checkMarkers parses every CRD-generator marker where the generator
// reads it (package doc, type and field docs) as the generator will, and
// judges every +kubebuilder: marker of the files that no controller-tools
// generator knows, wherever it is: in a namespace those generators use
// (+kubebuilder:validation:Minimun) it is a typo, an error; otherwise
// (+kubebuilder:docs-gen:collapse=..., of the kubebuilder book's tooling)
// it is another tool's, a warning (p.markerWarnings), and ignored.
func (p *apiPackage) checkMarkers() []error {
	var errs []error
	p.markerWarnings = nil
	check := func(cg *ast.CommentGroup, on crds.Target) {
		for _, m := range markerList(cg) {
			if err := crds.CheckMarker(m.Text, on); err != nil {
				errs = append(errs, fmt.Errorf("%s: marker %s: %v", p.fset.Position(m.Pos), m.Text, err))
			}
		}
	}
	for _, f := range p.files {
		for _, cg := range f.Comments {
			for _, m := range markerList(cg) {
				if !strings.HasPrefix(m.Name, "kubebuilder:") || crds.KnownMarker(m.Text) {
					continue
				}
				typo, suggestion, docs := crds.UnknownMarker(m.Text)
				if !typo {
					p.markerWarnings = append(p.markerWarnings, markerWarning{Name: "+" + m.Name, Pos: p.fset.Position(m.Pos)})
					continue
				}
				hint := "a typo?"
				if suggestion != "" {
					hint = "a typo of " + suggestion + "?"
				}
				errs = append(errs, fmt.Errorf("%s: marker %s: no such kubebuilder marker (%s): see %s", p.fset.Position(m.Pos), m.Text, hint, docs))
			}
			if cg.End() < f.Package {
				check(cg, crds.OnPackage)
			}
		}
		for _, decl := range f.Decls {
			gd, ok := decl.(*ast.GenDecl)
			if !ok || gd.Tok != token.TYPE {
				continue
			}
			for _, spec := range gd.Specs {
				ts := spec.(*ast.TypeSpec)
				for _, doc := range p.typeDocs(f, gd, ts) {
					check(doc, crds.OnType)
				}
				if st, ok := ts.Type.(*ast.StructType); ok {
					for _, field := range st.Fields.List {
						check(field.Doc, crds.OnField)
					}
				}
			}
		}
	}
	return errs
}

// markerWarning is a +kubebuilder: marker of another tool (see
// checkMarkers).
type markerWarning struct {
	Name string // +kubebuilder:docs-gen:collapse
	Pos  token.Position
}

// markerWarnings are the log lines of the packages' markers of other
// tools: one per marker name, with the first place it is at.
func markerWarnings(pkgs []*apiPackage) []string {
	byName := map[string][]token.Position{}
	var names []string
	for _, p := range pkgs {
		for _, w := range p.markerWarnings {
			if _, ok := byName[w.Name]; !ok {
				names = append(names, w.Name)
			}
			byName[w.Name] = append(byName[w.Name], w.Pos)
		}
	}
	sort.Strings(names)
	var out []string
	for _, name := range names {
		at := byName[name]
		where := at[0].String()
		if len(at) > 1 {
			where += fmt.Sprintf(" and %d more", len(at)-1)
		}
		out = append(out, fmt.Sprintf("rein-gen: warning: %s (%s) is no marker of controller-gen's generators: ignored", name, where))
	}
	return out
}

// checkFields checks the fields of every struct a kind reaches within its
// package: a json tag on each exported field (the CRD schema is named by
// them), types that exist, and types a CRD and deepcopy can hold.
func (p *apiPackage) checkFields() []error {
	var errs []error
	seen := map[string]bool{}
	imports := map[*ast.File]map[string]bool{}
	fileOf := map[string]*ast.File{}
	for _, f := range p.files {
		names := map[string]bool{}
		for _, imp := range f.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			name := path[strings.LastIndex(path, "/")+1:]
			if imp.Name != nil {
				name = imp.Name.Name
			}
			names[name] = true
		}
		imports[f] = names
		for _, decl := range f.Decls {
			if gd, ok := decl.(*ast.GenDecl); ok && gd.Tok == token.TYPE {
				for _, spec := range gd.Specs {
					fileOf[spec.(*ast.TypeSpec).Name.Name] = f
				}
			}
		}
	}
	var visit func(name string)
	visit = func(name string) {
		if seen[name] {
			return
		}
		seen[name] = true
		st := p.structs[name]
		if st == nil {
			return
		}
		file := fileOf[name]
		for _, field := range st.Fields.List {
			pos := p.fset.Position(field.Pos())
			fieldName := typeName(field.Type)
			if len(field.Names) > 0 {
				fieldName = field.Names[0].Name
			}
			tag := ""
			if field.Tag != nil {
				tag, _ = strconv.Unquote(field.Tag.Value)
			}
			json, hasJSON := reflect.StructTag(tag).Lookup("json")
			if len(field.Names) > 0 && field.Names[0].IsExported() && !hasJSON {
				errs = append(errs, fmt.Errorf("%s: field %s.%s has no json tag: give it one, e.g. `json:\"%s,omitempty\"`, or `json:\"-\"` to leave it out of the API", pos, name, fieldName, lowerFirst(fieldName)))
			}
			if json == "-" {
				continue
			}
			for _, problem := range p.checkType(field.Type, imports[file], visit) {
				errs = append(errs, fmt.Errorf("%s: field %s.%s: %s", pos, name, fieldName, problem))
			}
		}
	}
	for _, k := range p.Kinds {
		visit(k.Name)
	}
	return errs
}

// predeclared types a field may have.
var predeclared = map[string]bool{
	"bool": true, "string": true, "byte": true, "rune": true,
	"int": true, "int8": true, "int16": true, "int32": true, "int64": true,
	"uint": true, "uint8": true, "uint16": true, "uint32": true, "uint64": true,
	"float32": true, "float64": true,
}

// checkType returns what is wrong with a field's type expression, calling
// visit for the package's own named types it reaches.
func (p *apiPackage) checkType(e ast.Expr, imported map[string]bool, visit func(string)) []string {
	switch t := e.(type) {
	case *ast.Ident:
		switch {
		case predeclared[t.Name]:
			return nil
		case t.Name == "complex64" || t.Name == "complex128" || t.Name == "uintptr":
			return []string{fmt.Sprintf("type %s cannot be part of a Kubernetes API (no JSON schema): use a number or string type", t.Name)}
		case t.Name == "any" || t.Name == "error":
			return []string{fmt.Sprintf("type %s cannot be deep-copied or described by a schema: use a concrete type, or runtime.RawExtension / apiextensionsv1.JSON for free-form data", t.Name)}
		case p.declared[t.Name]:
			visit(t.Name)
			return nil
		}
		return []string{fmt.Sprintf("type %s is not declared in package %s: declare it, or import the package that does", t.Name, p.ImportPath)}
	case *ast.SelectorExpr:
		if x, ok := t.X.(*ast.Ident); ok && !imported[x.Name] {
			return []string{fmt.Sprintf("type %s.%s: no import named %s in this file: add the import", x.Name, t.Sel.Name, x.Name)}
		}
		if x, ok := t.X.(*ast.Ident); ok && x.Name == "unsafe" {
			return []string{"unsafe.Pointer cannot be part of a Kubernetes API"}
		}
		return nil
	case *ast.StarExpr:
		return p.checkType(t.X, imported, visit)
	case *ast.ArrayType:
		return p.checkType(t.Elt, imported, visit)
	case *ast.MapType:
		out := p.checkType(t.Value, imported, visit)
		if k, ok := t.Key.(*ast.Ident); !ok || (k.Name != "string" && !p.isStringType(k.Name)) {
			out = append(out, "map keys must be strings in a Kubernetes API (JSON objects): use map[string]...")
		}
		return out
	case *ast.ChanType:
		return []string{"a channel cannot be part of a Kubernetes API"}
	case *ast.FuncType:
		return []string{"a func cannot be part of a Kubernetes API"}
	case *ast.InterfaceType:
		return []string{"an interface cannot be deep-copied or described by a schema: use a concrete type, or runtime.RawExtension / apiextensionsv1.JSON for free-form data"}
	case *ast.StructType:
		return []string{"an anonymous struct cannot be described by deepcopy-gen: give the struct a name"}
	}
	return nil
}

// isStringType reports whether name is a type of the package defined as a
// string (type Phase string), which is a valid map key.
func (p *apiPackage) isStringType(name string) bool {
	for _, f := range p.files {
		for _, decl := range f.Decls {
			gd, ok := decl.(*ast.GenDecl)
			if !ok || gd.Tok != token.TYPE {
				continue
			}
			for _, spec := range gd.Specs {
				ts := spec.(*ast.TypeSpec)
				if ts.Name.Name == name {
					id, ok := ts.Type.(*ast.Ident)
					return ok && id.Name == "string"
				}
			}
		}
	}
	return false
}

func lowerFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToLower(s[:1]) + s[1:]
}

// checkStorageVersions: a kind served in several versions of its group
// needs exactly one marked +kubebuilder:storageversion.
func checkStorageVersions(pkgs []*apiPackage) []error {
	type served struct {
		versions []string
		storage  []string
		pos      token.Position
	}
	byKind := map[string]*served{}
	var keys []string
	for _, p := range pkgs {
		for _, k := range p.Kinds {
			key := p.Group + "/" + k.Name
			s := byKind[key]
			if s == nil {
				s = &served{pos: k.pos}
				byKind[key] = s
				keys = append(keys, key)
			}
			s.versions = append(s.versions, p.Version)
			if k.StorageVersion {
				s.storage = append(s.storage, p.Version)
			}
		}
	}
	sort.Strings(keys)
	var errs []error
	for _, key := range keys {
		s := byKind[key]
		group, kindName, _ := strings.Cut(key, "/")
		switch {
		case len(s.versions) < 2:
		case len(s.storage) == 0:
			errs = append(errs, fmt.Errorf("kind %s of %s is served in versions %s and none is the storage version: mark the kind of exactly one version with // +kubebuilder:storageversion",
				kindName, group, strings.Join(s.versions, ", ")))
		case len(s.storage) > 1:
			errs = append(errs, fmt.Errorf("kind %s of %s has several storage versions (%s): keep // +kubebuilder:storageversion on exactly one",
				kindName, group, strings.Join(s.storage, ", ")))
		}
	}
	return errs
}

// nameGroups decides the Go name (accessor, "AuditTrail") and package name
// ("audittrail") of every group, before anything is generated:
//
//  1. +groupGoName on a package of the group wins;
//  2. otherwise the group's first label, with '-' and '_' dropped and the
//     letter after them upper-cased ("audit-trail.example.com" → AuditTrail);
//  3. groups whose names from rule 2 collide take one more label each,
//     until they differ ("ops.a.io", "ops.b.io" → OpsA, OpsB).
//
// The package name is the Go name in lower case. Names that still collide
// are an error naming the packages and the marker to add.
func nameGroups(pkgs []*apiPackage) error {
	groups := map[string][]*apiPackage{}
	var names []string
	for _, p := range pkgs {
		if p.Group == "" {
			continue
		}
		if _, ok := groups[p.Group]; !ok {
			names = append(names, p.Group)
		}
		groups[p.Group] = append(groups[p.Group], p)
	}
	sort.Strings(names)
	goNames := map[string]string{}
	labels := map[string]int{}
	var errs []error
	for _, g := range names {
		override := ""
		for _, p := range groups[g] {
			if p.GroupGoNameMarker == "" {
				continue
			}
			if override != "" && override != p.GroupGoNameMarker {
				errs = append(errs, fmt.Errorf("group %s has two +groupGoName markers (%s, %s): keep one", g, override, p.GroupGoNameMarker))
			}
			override = p.GroupGoNameMarker
		}
		if override != "" {
			goNames[g] = strings.ToUpper(override[:1]) + override[1:]
			labels[g] = -1
			continue
		}
		labels[g] = 1
	}
	derive := func(g string, n int) string {
		parts := strings.Split(g, ".")
		if n > len(parts) {
			n = len(parts)
		}
		return goName(strings.Join(parts[:n], "."))
	}
	for {
		byPkg := map[string][]string{}
		for _, g := range names {
			if labels[g] > 0 {
				goNames[g] = derive(g, labels[g])
			}
			byPkg[strings.ToLower(goNames[g])] = append(byPkg[strings.ToLower(goNames[g])], g)
		}
		grown := false
		for _, gs := range byPkg {
			if len(gs) < 2 {
				continue
			}
			for _, g := range gs {
				if labels[g] > 0 && labels[g] < len(strings.Split(g, ".")) {
					labels[g]++
					grown = true
				}
			}
		}
		if grown {
			continue
		}
		pkgNames := make([]string, 0, len(byPkg))
		for name := range byPkg {
			pkgNames = append(pkgNames, name)
		}
		sort.Strings(pkgNames)
		for _, name := range pkgNames {
			if gs := byPkg[name]; len(gs) > 1 {
				errs = append(errs, fmt.Errorf("groups %s would share the Go package name %q: give one of them a name with `// +groupGoName=OtherName` in the doc.go of its packages", strings.Join(gs, " and "), name))
			}
		}
		break
	}
	for _, g := range names {
		for _, p := range groups[g] {
			p.goGroup = goNames[g]
			p.groupPackage = strings.ToLower(goNames[g])
		}
	}
	return errors.Join(errs...)
}
