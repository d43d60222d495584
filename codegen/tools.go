package codegen

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"runtime/debug"
	"strings"

	"github.com/gobuffalo/flect"

	// Linked for its version only: the generators run at the version of
	// k8s.io/code-generator that rein's go.mod requires.
	_ "k8s.io/code-generator"
)

const codeGeneratorModule = "k8s.io/code-generator"

// codeGenerators are the k8s.io/code-generator commands rein-gen runs.
var codeGenerators = []string{"deepcopy-gen", "client-gen", "lister-gen", "informer-gen"}

// codeGeneratorVersion is the version of k8s.io/code-generator that rein's
// go.mod requires: from this binary's build information, or, where a
// binary has none (a test binary), from the go command in rein's source.
func codeGeneratorVersion(ctx context.Context) (string, error) {
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, dep := range info.Deps {
			if dep.Path == codeGeneratorModule {
				if dep.Replace != nil {
					return dep.Replace.Version, nil
				}
				return dep.Version, nil
			}
		}
	}
	_, self, _, ok := goruntime.Caller(0)
	if !ok {
		return "", errors.New("codegen: cannot tell which k8s.io/code-generator to run: no build information")
	}
	var mod struct{ Version string }
	if err := goJSON(ctx, filepath.Dir(self), &mod, "list", "-m", "-json", codeGeneratorModule); err != nil || mod.Version == "" {
		return "", fmt.Errorf("codegen: cannot tell which k8s.io/code-generator to run: %v", err)
	}
	return mod.Version, nil
}

// installCodeGenerators builds the generators once per version into the
// user's cache folder (nothing but the Go module proxy is used) and returns
// that folder. They run as separate processes: they read their packages
// relative to their working directory, and they end the process (klog.Fatal)
// on some errors, which a library must not do.
func installCodeGenerators(ctx context.Context) (string, error) {
	version, err := codeGeneratorVersion(ctx)
	if err != nil {
		return "", err
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	bin := filepath.Join(cache, "rein-gen", "code-generator-"+version)
	missing := false
	for _, name := range codeGenerators {
		if _, err := os.Stat(filepath.Join(bin, name)); err != nil {
			missing = true
		}
	}
	if !missing {
		return bin, nil
	}
	args := []string{"install"}
	for _, name := range codeGenerators {
		args = append(args, codeGeneratorModule+"/cmd/"+name+"@"+version)
	}
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = os.TempDir() // @version installs ignore any module; be outside one
	cmd.Env = append(os.Environ(), "GOBIN="+bin, "GOFLAGS=")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("codegen: install k8s.io/code-generator %s: %w\n%s", version, err, out)
	}
	return bin, nil
}

// runCodeGenerators runs deepcopy-gen, client-gen, lister-gen and
// informer-gen over the API packages.
func (r *run) runCodeGenerators(ctx context.Context) error {
	bin, err := installCodeGenerators(ctx)
	if err != nil {
		return err
	}
	header, err := os.CreateTemp("", "rein-gen-header-*.txt")
	if err != nil {
		return fmt.Errorf("codegen: %w", err)
	}
	defer func() { _ = os.Remove(header.Name()) }()
	if _, err := header.WriteString(r.header); err != nil {
		return fmt.Errorf("codegen: %w", err)
	}
	if err := header.Close(); err != nil {
		return fmt.Errorf("codegen: %w", err)
	}

	var pkgs, inputs, plurals []string
	for _, p := range r.packages {
		pkgs = append(pkgs, p.ImportPath)
		inputs = append(inputs, "--input", p.ImportPath)
		for _, k := range p.Kinds {
			// client-gen takes the plural type name and lowercases it for
			// the path; flect keeps the kind's case (VirtualMachines).
			pluralType := flect.Pluralize(k.Name)
			if strings.ToLower(pluralType) != k.Plural {
				pluralType = k.Plural // +kubebuilder:resource:path overrides
			}
			plurals = append(plurals, k.Name+":"+pluralType)
		}
	}
	out := r.opts.OutputPackage
	common := []string{"--go-header-file", header.Name()}
	// Every kind's plural is given, so the clientset's paths are the CRD's.
	pluralFlag := []string{"--plural-exceptions", strings.Join(plurals, ",")}
	steps := []struct {
		name string
		args []string
	}{
		{"deepcopy-gen", append([]string{"--output-file", "zz_generated.deepcopy.go"}, pkgs...)},
		{"client-gen", append([]string{
			"--output-dir", filepath.Join(r.outDir, "clientset"), "--output-pkg", out + "/clientset",
			"--clientset-name", "versioned", "--input-base", "", pluralFlag[0], pluralFlag[1],
		}, inputs...)},
		{"lister-gen", append([]string{
			"--output-dir", filepath.Join(r.outDir, "listers"), "--output-pkg", out + "/listers",
			pluralFlag[0], pluralFlag[1],
		}, pkgs...)},
		{"informer-gen", append([]string{
			"--output-dir", filepath.Join(r.outDir, "informers"), "--output-pkg", out + "/informers",
			"--versioned-clientset-package", out + "/clientset/versioned",
			"--listers-package", out + "/listers", pluralFlag[0], pluralFlag[1],
		}, pkgs...)},
	}
	for _, step := range steps {
		fmt.Fprintf(r.log, "rein-gen: %s\n", step.name)
		cmd := exec.CommandContext(ctx, filepath.Join(bin, step.name), append(common, step.args...)...)
		cmd.Dir = r.moduleDir
		if output, err := cmd.CombinedOutput(); err != nil {
			hint := ""
			if strings.Contains(string(output), "go mod tidy") {
				hint = "; the module's go.mod is not tidy: run `go mod tidy` in " + r.moduleDir + " first"
			}
			return fmt.Errorf("codegen: %s failed: %w%s\n%s", step.name, err, hint, strings.TrimSpace(string(output)))
		}
	}
	return nil
}
