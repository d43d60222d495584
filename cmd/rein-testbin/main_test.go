package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/rein-k8s/rein/internal/testbin"
)

// fakeGo stands in for the go command and records what it was asked.
type fakeGo struct {
	cmds []testbin.Cmd
	fail bool
}

func (f *fakeGo) run(_ context.Context, c testbin.Cmd) error {
	f.cmds = append(f.cmds, c)
	if slices.Equal(c.Args, []string{"go", "env", "GOVERSION"}) {
		_, err := fmt.Fprintln(c.Stdout, "go1.26.8")
		return err
	}
	if f.fail {
		_, _ = fmt.Fprintln(c.Stderr, "kube-apiserver/main.go:1: syntax error")
		return fmt.Errorf("%s: exit status 1", strings.Join(c.Args, " "))
	}
	i := slices.Index(c.Args, "-o")
	if c.Args[1] != "build" || i < 0 {
		return fmt.Errorf("unexpected command %q", c.Args)
	}
	return os.WriteFile(c.Args[i+1], []byte("#!/bin/sh\n"), 0o755)
}

func runCmd(t *testing.T, fake *fakeGo, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = run(t.Context(), args, &out, &errOut, fake.run)
	return code, out.String(), errOut.String()
}

// TestBuildsAndPrintsTheFolderLast: go build runs in DIR/module for both
// binaries, and stdout is exactly the folder, for $(...).
func TestBuildsAndPrintsTheFolderLast(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "bin")
	fake := &fakeGo{}
	code, stdout, stderr := runCmd(t, fake, "--dir", dir)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if stdout != dir+"\n" {
		t.Fatalf("stdout %q, want the folder %q alone", stdout, dir)
	}
	var built []string
	for _, c := range fake.cmds {
		if c.Args[1] != "build" {
			continue
		}
		if c.Dir != filepath.Join(dir, "module") {
			t.Errorf("%q runs in %s", c.Args, c.Dir)
		}
		o := slices.Index(c.Args, "-o")
		if o < 0 || filepath.Dir(c.Args[o+1]) != dir || !slices.Contains(c.Env, "CGO_ENABLED=0") {
			t.Errorf("go build %q env %q", c.Args, c.Env)
		}
		built = append(built, c.Args[len(c.Args)-1])
		if c.Args[len(c.Args)-1] == "./kube-apiserver" && !strings.Contains(strings.Join(c.Args, " "), "version.gitVersion=v1.") {
			t.Errorf("kube-apiserver built without its version: %q", c.Args)
		}
	}
	if !slices.Equal(built, []string{"./etcd", "./kube-apiserver"}) {
		t.Fatalf("built %v", built)
	}
	if _, err := os.Stat(filepath.Join(dir, "module", "go.mod")); err != nil {
		t.Fatal(err)
	}
	for _, b := range []string{"kube-apiserver", "etcd"} {
		if _, err := os.Stat(filepath.Join(dir, b)); err != nil {
			t.Fatal(err)
		}
	}
	if !strings.Contains(stderr, "building etcd") || !strings.Contains(stderr, "built in") {
		t.Fatalf("stderr has no progress:\n%s", stderr)
	}

	// Again: nothing built, same last line.
	fake.cmds = nil
	code, stdout, stderr = runCmd(t, fake, "--dir", dir)
	if code != 0 || stdout != dir+"\n" || len(fake.cmds) != 1 || !strings.Contains(stderr, "up to date") {
		t.Fatalf("second run: exit %d, stdout %q, %d commands, stderr %s", code, stdout, len(fake.cmds), stderr)
	}
	// --force builds again.
	fake.cmds = nil
	if code, _, stderr := runCmd(t, fake, "--dir", dir, "--force"); code != 0 || len(fake.cmds) != 3 {
		t.Fatalf("--force: exit %d, %d commands: %s", code, len(fake.cmds), stderr)
	}
}

func TestDefaultFolderIsTheCache(t *testing.T) {
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	t.Setenv("HOME", t.TempDir())
	m, err := testbin.Pinned()
	if err != nil {
		t.Fatal(err)
	}
	want, err := m.DefaultDir()
	if err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := runCmd(t, &fakeGo{})
	if code != 0 || stdout != want+"\n" {
		t.Fatalf("exit %d, stdout %q, want %q: %s", code, stdout, want, stderr)
	}
	if testbin.Missing(want) != "" {
		t.Fatalf("binaries not in %s", want)
	}
}

func TestModuleOnly(t *testing.T) {
	dir := t.TempDir()
	fake := &fakeGo{}
	code, stdout, stderr := runCmd(t, fake, "--module-only", "--dir", dir)
	if code != 0 || stdout != filepath.Join(dir, "module")+"\n" || len(fake.cmds) != 0 {
		t.Fatalf("exit %d, stdout %q, %d commands: %s", code, stdout, len(fake.cmds), stderr)
	}
	if _, err := os.Stat(filepath.Join(dir, "module", "kube-apiserver", "main.go")); err != nil {
		t.Fatal(err)
	}
}

func TestBuildFailure(t *testing.T) {
	code, stdout, stderr := runCmd(t, &fakeGo{fail: true}, "--dir", t.TempDir())
	if code != 1 || stdout != "" {
		t.Fatalf("exit %d, stdout %q", code, stdout)
	}
	if !strings.Contains(stderr, "syntax error") || !strings.Contains(stderr, "rein-testbin: build etcd: go build") {
		t.Fatalf("stderr does not carry go build's output and the failed step:\n%s", stderr)
	}
}

func TestBadUsage(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"extra"}, `unexpected argument "extra"`},
		{[]string{"--dir="}, "--dir is empty"},
		{[]string{"--dir", file}, "is a file, not a folder"},
		{[]string{"--force", "--module-only"}, "exclude each other"},
		{[]string{"--frobnicate"}, "flag provided but not defined: -frobnicate"},
		{[]string{"--force=maybe"}, "invalid boolean value"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			fake := &fakeGo{}
			code, stdout, stderr := runCmd(t, fake, tc.args...)
			if code != 2 || stdout != "" || len(fake.cmds) != 0 || !strings.Contains(stderr, tc.want) {
				t.Fatalf("exit %d, stdout %q, %d commands, stderr:\n%s\nwant exit 2 and %q", code, stdout, len(fake.cmds), stderr, tc.want)
			}
		})
	}
	code, stdout, stderr := runCmd(t, &fakeGo{}, "-h")
	if code != 0 || stdout != "" || !strings.Contains(stderr, "usage: rein-testbin") || !strings.Contains(stderr, "-module-only") {
		t.Fatalf("-h: exit %d, stdout %q, stderr %s", code, stdout, stderr)
	}
}

// TestRunnableWithAtVersion guards what `go run .../rein-testbin@version`
// needs: rein's go.mod without replace or exclude directives (the go
// command refuses those for pkg@version), and no dependency outside the
// standard library, so that `go run` from a module that requires rein needs
// no go.sum lines beyond rein's own.
func TestRunnableWithAtVersion(t *testing.T) {
	goMod, err := os.ReadFile("../../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(goMod)) {
		if f := strings.Fields(line); len(f) > 0 && (f[0] == "replace" || f[0] == "exclude") {
			t.Errorf("rein's go.mod has %q: `go run github.com/rein-k8s/rein/cmd/rein-testbin@version` would fail", strings.TrimSpace(line))
		}
	}
	var out bytes.Buffer
	err = testbin.Exec(t.Context(), testbin.Cmd{Args: []string{"go", "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", "."}, Stdout: &out, Stderr: &out})
	if err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	for _, p := range strings.Fields(out.String()) {
		if !strings.HasPrefix(p, "github.com/rein-k8s/rein/") {
			t.Errorf("rein-testbin depends on %s, outside rein and the standard library", p)
		}
	}
}
