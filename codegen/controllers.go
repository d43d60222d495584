package codegen

import (
	"fmt"
	"io"
	"path/filepath"
	"sort"
	"strings"
)

// writeControllers writes rein's typed controllers of packages under dir
// (see renderControllers).
func writeControllers(packages []*apiPackage, dir, importBase, header string) error {
	files, err := renderControllers(packages, dir, importBase, header)
	if err != nil {
		return err
	}
	t := &transaction{}
	for _, file := range sortedKeys(files) {
		if _, err := t.write(file, files[file]); err != nil {
			return fmt.Errorf("codegen: %w", err)
		}
	}
	return nil
}

// renderControllers renders rein's typed controllers of packages under dir
// (import path importBase): per group a Factory, per version an Interface,
// per kind the Controller/Client/Cache aliases and, for kinds with a
// status, a status handler helper. It returns the files by path.
func renderControllers(packages []*apiPackage, dir, importBase, header string) (map[string][]byte, error) {
	files := map[string][]byte{}
	render := func(file string, t interface {
		Execute(w io.Writer, data any) error
		Name() string
	}, data any) error {
		out, err := renderWith(header, t.Name(), t, data)
		if err != nil {
			return fmt.Errorf("codegen: %s: %w", file, err)
		}
		files[file] = out
		return nil
	}
	groups := map[string][]*apiPackage{}
	for _, p := range packages {
		groups[p.GroupPackage()] = append(groups[p.GroupPackage()], p)
	}
	names := make([]string, 0, len(groups))
	for name := range groups {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		pkgs := groups[name]
		sort.Slice(pkgs, func(i, j int) bool { return pkgs[i].Version < pkgs[j].Version })
		g := groupData{
			Group:        pkgs[0].Group,
			GoGroup:      pkgs[0].GoGroup(),
			Package:      name,
			ControllerPk: importBase + "/" + name,
		}
		for _, p := range pkgs {
			if p.Group != g.Group {
				return nil, fmt.Errorf("codegen: packages %s and %s both map to controllers/%s but have groups %s and %s",
					pkgs[0].ImportPath, p.ImportPath, name, g.Group, p.Group)
			}
			g.Versions = append(g.Versions, versionData{
				Version:       p.Version,
				APIImport:     p.ImportPath,
				APIAlias:      apiAlias(name, p.Version),
				ControllerImp: g.ControllerPk + "/" + p.Version,
				Kinds:         p.Kinds,
			})
		}
		groupDir := filepath.Join(dir, name)
		if err := render(filepath.Join(groupDir, "factory.go"), factoryTemplate, g); err != nil {
			return nil, err
		}
		for _, v := range g.Versions {
			versionDir := filepath.Join(groupDir, v.Version)
			if err := render(filepath.Join(versionDir, "interface.go"), versionTemplate, v); err != nil {
				return nil, err
			}
			for _, k := range v.Kinds {
				file := filepath.Join(versionDir, strings.ToLower(k.Name)+".go")
				if err := render(file, kindTemplate, kindData{versionData: v, Group: g.Group, kind: k}); err != nil {
					return nil, err
				}
			}
		}
	}
	return files, nil
}

// apiAlias names an API package in generated files: vmv1alpha1.
func apiAlias(group, version string) string { return group + version }
