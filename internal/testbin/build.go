package testbin

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// Cmd is one go command of a build.
type Cmd struct {
	// Dir is the folder it runs in: the module's.
	Dir string
	// Args is the command line, starting with "go".
	Args []string
	// Env is added to the environment of the process.
	Env []string
	// Stdout and Stderr receive its output.
	Stdout, Stderr io.Writer
}

// Runner runs a command to completion. Exec is the real one; tests pass
// stubs.
type Runner func(ctx context.Context, c Cmd) error

// Exec runs c as a process, killing it when ctx ends.
func Exec(ctx context.Context, c Cmd) error {
	if len(c.Args) == 0 {
		return errors.New("testbin: empty command")
	}
	cmd := exec.CommandContext(ctx, c.Args[0], c.Args[1:]...)
	cmd.Dir = c.Dir
	cmd.Env = append(os.Environ(), c.Env...)
	cmd.Stdout, cmd.Stderr = c.Stdout, c.Stderr
	err := cmd.Run()
	if errors.Is(err, exec.ErrNotFound) {
		return fmt.Errorf("the %s command is not on PATH: kube-apiserver and etcd are built with it (install Go from https://go.dev/dl)", c.Args[0])
	}
	if err != nil {
		return fmt.Errorf("%s: %w", strings.Join(c.Args, " "), err)
	}
	return nil
}

// step is the go build of one binary.
type step struct {
	binary string
	Args   []string
	Env    []string
}

// steps are the go build commands of the binaries, writing binary b to
// out(b).
func (m *Module) steps(out func(binary string) string) []step {
	minor := strings.Split(m.kubernetes, ".")[1]
	var steps []step
	for _, b := range Binaries {
		args := []string{"go", "build", "-trimpath", "-buildvcs=false"}
		if b == KubeAPIServer {
			// What kube-apiserver --version and the /version endpoint say;
			// client-go's discovery compares it with its own.
			args = append(args, "-ldflags", "-X k8s.io/component-base/version.gitVersion="+m.kubernetes+
				" -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor="+minor)
		}
		args = append(args, "-o", out(b), "./"+b)
		// Static binaries; a go.work above the build folder must not pull
		// the module into a workspace.
		steps = append(steps, step{binary: b, Args: args, Env: []string{"CGO_ENABLED=0", "GOWORK=off"}})
	}
	return steps
}

// BuildOptions configures Build.
type BuildOptions struct {
	// Dir is the build folder: the binaries are written into it, the module
	// into its subfolder ModuleDir. It is created if missing. Required.
	Dir string
	// Force rebuilds even when the binaries are up to date.
	Force bool
	// Runner runs the go commands; nil means Exec.
	Runner Runner
	// Log receives progress and the go commands' output; nil discards it.
	Log io.Writer
}

// BuildResult says what Build did.
type BuildResult struct {
	// Dir is the absolute build folder, which holds the binaries.
	Dir string
	// Built is false when the binaries were already up to date.
	Built bool
	// GoVersion is the Go version they are (or were) built with.
	GoVersion string
	// Took is how long the build took.
	Took time.Duration
}

// Build writes the module into opts.Dir/module and builds kube-apiserver and
// etcd into opts.Dir, unless they are there already, built from the same
// module (Hash) with the same Go version. Each binary is built under a
// temporary name and renamed into place, and the stamp file is written last,
// so an interrupted build is redone by the next one, and concurrent builds
// into one folder do not corrupt it.
func (m *Module) Build(ctx context.Context, opts BuildOptions) (BuildResult, error) {
	if opts.Dir == "" {
		return BuildResult{}, errors.New("testbin: no build folder given")
	}
	run := opts.Runner
	if run == nil {
		run = Exec
	}
	log := opts.Log
	if log == nil {
		log = io.Discard
	}
	dir, err := filepath.Abs(opts.Dir)
	if err != nil {
		return BuildResult{}, fmt.Errorf("testbin: %w", err)
	}
	res := BuildResult{Dir: dir}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return res, fmt.Errorf("testbin: build folder: %w", err)
	}
	moduleDir := filepath.Join(dir, ModuleDir)
	if err := m.Write(moduleDir); err != nil {
		return res, err
	}

	// The go command in the module's folder, as the build will run it (a
	// GOTOOLCHAIN switch included).
	var version bytes.Buffer
	if err := run(ctx, Cmd{Dir: moduleDir, Args: []string{"go", "env", "GOVERSION"}, Env: []string{"GOWORK=off"}, Stdout: &version, Stderr: log}); err != nil {
		return res, fmt.Errorf("testbin: find the Go version: %w", err)
	}
	res.GoVersion = strings.TrimSpace(version.String())
	if res.GoVersion == "" {
		return res, errors.New("testbin: `go env GOVERSION` printed nothing")
	}
	stamp := m.Hash() + " " + res.GoVersion + "\n"
	stampPath := filepath.Join(dir, StampFile)
	if !opts.Force && upToDate(dir, stampPath, stamp) {
		fmt.Fprintf(log, "rein-testbin: kube-apiserver %s and etcd %s in %s are up to date\n", m.kubernetes, m.etcd, dir)
		return res, nil
	}

	// From here on the folder's binaries may be from two builds: no stamp.
	if err := os.Remove(stampPath); err != nil && !errors.Is(err, os.ErrNotExist) {
		return res, fmt.Errorf("testbin: %w", err)
	}
	fmt.Fprintf(log, "rein-testbin: building etcd %s and kube-apiserver %s with %s into %s\n"+
		"rein-testbin: a cold build takes 15-20 minutes on 2 cores; later builds of the same pins reuse Go's build cache\n",
		m.etcd, m.kubernetes, res.GoVersion, dir)
	begin := time.Now()
	tmps := map[string]string{}
	for _, b := range Binaries {
		tmps[b] = tempName(filepath.Join(dir, b))
	}
	defer func() {
		for _, tmp := range tmps {
			_ = os.Remove(tmp)
		}
	}()
	// Each binary is built under its temporary name, then renamed.
	for _, s := range m.steps(func(b string) string { return tmps[b] }) {
		stepBegin := time.Now()
		fmt.Fprintf(log, "rein-testbin: go build %s\n", s.binary)
		if err := run(ctx, Cmd{Dir: moduleDir, Args: s.Args, Env: s.Env, Stdout: log, Stderr: log}); err != nil {
			return res, fmt.Errorf("testbin: build %s: %w", s.binary, err)
		}
		if err := os.Rename(tmps[s.binary], filepath.Join(dir, s.binary)); err != nil {
			return res, fmt.Errorf("testbin: build %s: %w", s.binary, err)
		}
		fmt.Fprintf(log, "rein-testbin: %s built in %v\n", s.binary, time.Since(stepBegin).Round(100*time.Millisecond))
	}
	if err := writeFileAtomic(stampPath, []byte(stamp), 0o644); err != nil {
		return res, fmt.Errorf("testbin: %w", err)
	}
	res.Built, res.Took = true, time.Since(begin)
	fmt.Fprintf(log, "rein-testbin: built in %v\n", res.Took.Round(100*time.Millisecond))
	return res, nil
}

// upToDate reports whether dir holds both binaries and the stamp says they
// were built as stamp says.
func upToDate(dir, stampPath, stamp string) bool {
	have, err := os.ReadFile(stampPath)
	if err != nil || string(have) != stamp {
		return false
	}
	return Missing(dir) == ""
}

// Missing returns the first binary that dir lacks (or has, but not as an
// executable file), or "" when it has both.
func Missing(dir string) string {
	for _, b := range Binaries {
		info, err := os.Stat(filepath.Join(dir, b))
		if err != nil || !info.Mode().IsRegular() || info.Mode()&0o111 == 0 {
			return b
		}
	}
	return ""
}
