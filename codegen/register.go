package codegen

import (
	"fmt"
	"path/filepath"
)

// renderRegistration adds to files, for each API package, what the
// generated clients need and the hand-written files lack:
// zz_generated_register.go (SchemeGroupVersion, Resource, AddToScheme, ...)
// and zz_generated_list_types.go (<Kind>List with its deepcopy methods).
// A kubebuilder package keeps its GroupVersion and SchemeBuilder; rein-gen
// only adds SchemeGroupVersion and Resource, which code-generator's clients
// and listers refer to.
func (r *run) renderRegistration(files map[string][]byte) error {
	for _, p := range r.packages {
		var lists []*kind
		for _, k := range p.Kinds {
			if !k.HasList {
				lists = append(lists, k)
			}
		}
		if len(lists) > 0 {
			file := filepath.Join(p.Dir, "zz_generated_list_types.go")
			out, err := renderTagged(autogenTag, r.header, "lists", listTypesTemplate, struct {
				Name  string
				Lists []*kind
			}{p.Name, lists})
			if err != nil {
				return fmt.Errorf("codegen: %s: %w", file, err)
			}
			files[file] = out
		}
		data := struct {
			P                                       *apiPackage
			GroupName, SchemeGV, KindFunc, Resource bool
			NeedSchema                              bool
		}{
			P:         p,
			GroupName: !p.HasAddToScheme && !p.HasGroupName,
			SchemeGV:  !p.HasSchemeGV,
			KindFunc:  !p.HasAddToScheme && !p.HasKindFunc,
			Resource:  !p.HasResource,
		}
		data.NeedSchema = (data.SchemeGV && !p.HasGroupVersion) || data.KindFunc || data.Resource
		if !p.HasAddToScheme || data.SchemeGV || data.Resource {
			file := filepath.Join(p.Dir, "zz_generated_register.go")
			out, err := renderTagged(autogenTag, r.header, "register", registerTemplate, data)
			if err != nil {
				return fmt.Errorf("codegen: %s: %w", file, err)
			}
			files[file] = out
		}
	}
	return nil
}
