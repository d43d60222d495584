package codegen

import (
	"context"
	"fmt"
	"os/exec"
	"strings"

	"golang.org/x/tools/go/packages"
)

// typeCheck loads the API packages and the generated packages with types,
// in this process (dependencies come from the build cache's export data),
// and fails, naming file and line, when any does not compile. When the
// module lacks a requirement or go.sum entry the generated code needs (a
// first run: nothing imported client-go or rein's runtime before), it runs
// `go mod tidy` once, says so, and checks again; with Options.NoTidy it
// fails naming that command instead.
func (r *run) typeCheck(ctx context.Context, files map[string][]byte) error {
	patterns := []string{r.opts.OutputPackage + "/..."}
	for _, p := range r.packages {
		patterns = append(patterns, p.ImportPath)
	}
	for _, p := range r.support {
		patterns = append(patterns, p.ImportPath)
	}
	msgs, moduleProblem, err := r.loadErrors(ctx, patterns)
	if err != nil {
		return err
	}
	if moduleProblem && !r.opts.NoTidy {
		fmt.Fprintln(r.log, "rein-gen: go.mod lacks what the generated code imports (a first run): running `go mod tidy` in the module's root")
		cmd := exec.CommandContext(ctx, "go", "mod", "tidy")
		cmd.Dir = r.moduleDir
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("codegen: go.mod lacks what the generated code imports, and `go mod tidy` in the module's root failed (%w): fix what it says, run it, then rein-gen again:\n%s", err, strings.TrimSpace(string(out)))
		}
		msgs, moduleProblem, err = r.loadErrors(ctx, patterns)
		if err != nil {
			return err
		}
	}
	if len(msgs) == 0 {
		return nil
	}
	if moduleProblem {
		return fmt.Errorf("codegen: go.mod lacks what the generated code imports: run `go mod tidy` in the module's root (and `go get github.com/rein-k8s/rein` first if go.mod does not require it), then rein-gen again; the tree was left as it was. The go command says:\n%s",
			strings.Join(limitLines(msgs), "\n"))
	}
	// Whose code fails: a hand-written file that uses what the API no
	// longer has (a removed kind, say) is the user's to change; an error in
	// a generated file is rein-gen's.
	inGenerated := false
	for _, m := range msgs {
		file, _, _ := strings.Cut(strings.TrimPrefix(m, "-: "), ":")
		if _, ok := files[file]; ok {
			inGenerated = true
		}
	}
	if inGenerated {
		return fmt.Errorf("codegen: the generated code does not compile, so it was not kept (the tree is as it was); this is a rein-gen bug or an API it cannot handle, please report it with the API:\n%s",
			strings.Join(limitLines(msgs), "\n"))
	}
	return fmt.Errorf("codegen: the module's own code does not compile with the code generated for this API (the tree is as it was): change it to fit the API, then run rein-gen again:\n%s",
		strings.Join(limitLines(msgs), "\n"))
}

// loadErrors type-checks the packages and returns their errors, and
// whether they are about the module's requirements rather than the code.
func (r *run) loadErrors(ctx context.Context, patterns []string) (msgs []string, moduleProblem bool, err error) {
	cfg := &packages.Config{
		Context: ctx,
		Dir:     r.moduleDir,
		Mode:    packages.NeedName | packages.NeedFiles | packages.NeedCompiledGoFiles | packages.NeedImports | packages.NeedTypes | packages.NeedSyntax | packages.NeedTypesInfo | packages.NeedModule,
	}
	pkgs, err := packages.Load(cfg, patterns...)
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return nil, false, ctxErr
		}
		msg := err.Error()
		if isModuleProblem(msg) {
			return []string{msg}, true, nil
		}
		return nil, false, fmt.Errorf("codegen: type-check the generated code: %w", err)
	}
	// When the go command itself fails (go.mod needs updates, say),
	// go/packages returns no packages and no error: ask the go command
	// what is wrong.
	loaded := map[string]bool{}
	for _, p := range pkgs {
		loaded[p.PkgPath] = true
	}
	for _, p := range r.packages {
		if !loaded[p.ImportPath] {
			cmd := exec.CommandContext(ctx, "go", append([]string{"list", "-e"}, patterns...)...)
			cmd.Dir = r.moduleDir
			out, _ := cmd.CombinedOutput()
			msg := strings.TrimSpace(string(out))
			if msg == "" {
				msg = "go list did not find " + p.ImportPath
			}
			return []string{msg}, isModuleProblem(msg), nil
		}
	}
	seen := map[string]bool{}
	for _, p := range pkgs {
		for _, e := range p.Errors {
			msg := e.Error()
			if seen[msg] {
				continue
			}
			seen[msg] = true
			if isModuleProblem(msg) {
				moduleProblem = true
			}
			msgs = append(msgs, msg)
		}
	}
	return msgs, moduleProblem, nil
}

func isModuleProblem(msg string) bool {
	for _, s := range []string{"missing go.sum entry", "no required module provides package", "updates to go.mod needed", "go: updates to go.mod", "is not in std", "go mod tidy", "go get "} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}

func limitLines(msgs []string) []string {
	const max = 20
	if len(msgs) <= max {
		return msgs
	}
	return append(msgs[:max:max], fmt.Sprintf("... and %d more", len(msgs)-max))
}
