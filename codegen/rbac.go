package codegen

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/rein-k8s/rein/codegen/internal/rbac"
)

// readRBAC reads and checks the module's +kubebuilder:rbac markers when
// an RBAC folder is given: every package of the module, but rein-gen's own
// output trees, as controller-gen's paths=./... would load them.
func (r *run) readRBAC() error {
	if r.rbacDir == "" {
		return nil
	}
	trees, _ := r.ownedRoots()
	sources, err := rbac.Scan(r.moduleDir, func(dir string) bool {
		for _, t := range trees {
			if dir == t {
				return true
			}
		}
		return false
	})
	if err != nil {
		return err
	}
	parsed, err := rbac.Parse(sources, r.rel)
	if err != nil {
		return err
	}
	if errs := parsed.Check(); len(errs) > 0 {
		return errors.Join(errs...)
	}
	for _, w := range parsed.Ignored() {
		fmt.Fprintln(r.log, "rein-gen: warning: "+w)
	}
	r.rbacParsed, r.rbacInputs = parsed, sources
	return nil
}

// renderRBAC adds the RBAC manifest to files, if any marker counts.
func (r *run) renderRBAC(files map[string][]byte) error {
	if r.rbacParsed == nil {
		return nil
	}
	manifest, err := r.rbacParsed.Manifest(r.rbacRole, ownedYAMLHeader+"\n")
	if err != nil {
		return fmt.Errorf("codegen: nothing was written: RBAC manifest: %w", err)
	}
	if manifest == nil {
		fmt.Fprintf(r.log, "rein-gen: no +kubebuilder:rbac markers in the module: no %s\n", filepath.Join(r.rel(r.rbacDir), rbac.FileName))
		return nil
	}
	files[filepath.Join(r.rbacDir, rbac.FileName)] = manifest
	return nil
}

// rel is path as messages show it: relative to the module's root when it
// lies inside.
func (r *run) rel(path string) string {
	if rel, err := filepath.Rel(r.moduleDir, path); err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		return rel
	}
	return path
}

// relative returns err with the module root's path cut from the paths in
// its message (file:line positions, files, folders), so that they read as
// relative to the root; errors.Is and errors.As still see err.
func (r *run) relative(err error) error {
	if err == nil || r.moduleDir == "" || filepath.Dir(r.moduleDir) == r.moduleDir {
		return err
	}
	msg := err.Error()
	roots := []string{r.moduleDir}
	if real, rerr := filepath.EvalSymlinks(r.moduleDir); rerr == nil && real != r.moduleDir {
		roots = append(roots, real)
	}
	for _, root := range roots {
		msg = strings.ReplaceAll(msg, root+string(os.PathSeparator), "")
	}
	if msg == err.Error() {
		return err
	}
	return &relativeError{msg: msg, err: err}
}

type relativeError struct {
	msg string
	err error
}

func (e *relativeError) Error() string { return e.msg }
func (e *relativeError) Unwrap() error { return e.err }
