package testbin

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
)

// sourceFS is the module as stored in the repository: the pins' one source.
func sourceFS(t *testing.T) fstest.MapFS {
	t.Helper()
	src := fstest.MapFS{}
	root := "module"
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		src[filepath.ToSlash(rel)] = &fstest.MapFile{Data: data}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return src
}

func pinned(t *testing.T) *Module {
	t.Helper()
	m, err := Pinned()
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestWrittenModuleIsTheSource writes the embedded module and compares every
// written file, go.mod and go.sum above all, with the stored source.
func TestWrittenModuleIsTheSource(t *testing.T) {
	m := pinned(t)
	dir := t.TempDir()
	if err := m.Write(dir); err != nil {
		t.Fatal(err)
	}
	src := sourceFS(t)
	var written []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		written = append(written, filepath.ToSlash(rel))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var stored []string
	for name := range src {
		stored = append(stored, strings.TrimSuffix(name, ".txt"))
	}
	slices.Sort(stored)
	if !slices.Equal(written, stored) {
		t.Fatalf("written files %v, stored %v", written, stored)
	}
	for _, name := range []string{"go.mod", "go.sum", "kube-apiserver/main.go", "etcd/main.go"} {
		got, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if want := src[name+".txt"].Data; !bytes.Equal(got, want) {
			t.Errorf("written %s differs from module/%s.txt", name, name)
		}
	}
	if !bytes.Contains(m.File("go.mod"), []byte("\nmodule ")) || !bytes.Contains(m.File("go.mod"), []byte("k8s.io/api => k8s.io/api "+strings.Replace(m.KubernetesVersion(), "v1.", "v0.", 1))) {
		t.Errorf("go.mod lacks the module line or the replace of k8s.io/api at the pinned release:\n%s", m.File("go.mod"))
	}
	if m.KubernetesVersion() == "" || m.EtcdVersion() == "" {
		t.Fatalf("versions %q %q", m.KubernetesVersion(), m.EtcdVersion())
	}

	// Writing again over a changed file restores it.
	p := filepath.Join(dir, "go.sum")
	if err := os.WriteFile(p, []byte("junk\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := m.Write(dir); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(p); !bytes.Equal(got, m.File("go.sum")) {
		t.Fatal("a second Write did not restore go.sum")
	}
}

// TestHashFollowsThePins: the folder name changes with go.mod or go.sum, and
// only with the module's content.
func TestHashFollowsThePins(t *testing.T) {
	load := func(src fstest.MapFS) *Module {
		t.Helper()
		m, err := Load(src)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	base := pinned(t)
	if h := load(sourceFS(t)).Hash(); h != base.Hash() {
		t.Fatalf("the stored source hashes to %s, the embedded module to %s", h, base.Hash())
	}
	if len(base.Hash()) != 12 {
		t.Fatalf("hash %q, want 12 hex digits", base.Hash())
	}

	sum := sourceFS(t)
	sum["go.sum"+suffix].Data = append(slices.Clone(sum["go.sum"+suffix].Data), "example.com/x v1.0.0 h1:AAAA=\n"...)
	bump := sourceFS(t)
	bump["go.mod"+suffix].Data = bytes.ReplaceAll(bump["go.mod"+suffix].Data,
		[]byte("k8s.io/kubernetes "+base.KubernetesVersion()), []byte("k8s.io/kubernetes v1.99.0"))
	bumped := load(bump)
	if bumped.KubernetesVersion() != "v1.99.0" {
		t.Fatalf("bumped go.mod pins kubernetes %s", bumped.KubernetesVersion())
	}
	main := sourceFS(t)
	main["etcd/main.go"+suffix].Data = append(slices.Clone(main["etcd/main.go"+suffix].Data), "// changed\n"...)
	seen := map[string]string{base.Hash(): "pinned"}
	for name, m := range map[string]*Module{"go.sum": load(sum), "go.mod": bumped, "etcd/main.go": load(main)} {
		if other, ok := seen[m.Hash()]; ok {
			t.Errorf("changing %s leaves the hash %s of %s", name, m.Hash(), other)
		}
		seen[m.Hash()] = "changed " + name
	}

	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	t.Setenv("HOME", t.TempDir())
	cache, err := os.UserCacheDir()
	if err != nil {
		t.Fatal(err)
	}
	d1, err := base.DefaultDir()
	if err != nil {
		t.Fatal(err)
	}
	d2, _ := bumped.DefaultDir()
	if d1 != filepath.Join(cache, "rein", "testbin", base.Hash()) || d1 == d2 {
		t.Fatalf("default folders %s and %s (cache %s)", d1, d2, cache)
	}
}

func TestLoadRefusesIncompleteModules(t *testing.T) {
	for name, change := range map[string]func(fstest.MapFS){
		"no go.sum":       func(m fstest.MapFS) { delete(m, "go.sum.txt") },
		"no main package": func(m fstest.MapFS) { delete(m, "kube-apiserver/main.go.txt") },
		"unsuffixed file": func(m fstest.MapFS) { m["README"] = &fstest.MapFile{Data: []byte("x")} },
		"no etcd required": func(m fstest.MapFS) {
			m["go.mod.txt"] = &fstest.MapFile{Data: []byte("module x\nrequire k8s.io/kubernetes v1.37.1\n")}
		},
		"odd k8s version": func(m fstest.MapFS) {
			m["go.mod.txt"] = &fstest.MapFile{Data: []byte("module x\nrequire (\n\tk8s.io/kubernetes v1\n\tgo.etcd.io/etcd/server/v3 v3.7.0\n)\n")}
		},
	} {
		t.Run(name, func(t *testing.T) {
			src := sourceFS(t)
			change(src)
			if _, err := Load(src); err == nil || !strings.HasPrefix(err.Error(), "testbin: load module: ") {
				t.Fatalf("Load: %v, want an error", err)
			}
		})
	}
}

func TestRequirements(t *testing.T) {
	got := requirements([]byte(`// comment naming require a b
module example.com/m

require k8s.io/kubernetes v1.37.1 // single
require (
	go.etcd.io/etcd/server/v3 v3.7.0
	golang.org/x/net v0.1.0 // indirect
)
replace k8s.io/api => k8s.io/api v0.37.1
`))
	want := map[string]string{"k8s.io/kubernetes": "v1.37.1", "go.etcd.io/etcd/server/v3": "v3.7.0", "golang.org/x/net": "v0.1.0"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("requirements %v, want %v", got, want)
	}
}

// fakeGo stands in for the go command: `go env GOVERSION` prints version,
// `go build -o X` writes an executable X (or fails for the binary named in
// fail). It records every command.
type fakeGo struct {
	mu      sync.Mutex
	version string
	fail    string
	cmds    []Cmd
}

func (f *fakeGo) run(_ context.Context, c Cmd) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cmds = append(f.cmds, c)
	switch {
	case slices.Equal(c.Args, []string{"go", "env", "GOVERSION"}):
		_, err := fmt.Fprintln(c.Stdout, f.version)
		return err
	case len(c.Args) > 3 && c.Args[1] == "build":
		if _, err := os.Stat(filepath.Join(c.Dir, "go.mod")); err != nil {
			return fmt.Errorf("go build outside the module: %w", err)
		}
		if f.fail != "" && c.Args[len(c.Args)-1] == "./"+f.fail {
			return errors.New("exit status 1")
		}
		i := slices.Index(c.Args, "-o")
		return os.WriteFile(c.Args[i+1], []byte("#!/bin/sh\n"), 0o755)
	}
	return fmt.Errorf("unexpected command %q", c.Args)
}

func (f *fakeGo) builds() []Cmd {
	f.mu.Lock()
	defer f.mu.Unlock()
	var b []Cmd
	for _, c := range f.cmds {
		if c.Args[1] == "build" {
			b = append(b, c)
		}
	}
	f.cmds = nil
	return b
}

// TestBuildRunsGoBuild checks, with a stand-in for the go command, the
// commands a build runs, where, and when it skips them.
func TestBuildRunsGoBuild(t *testing.T) {
	m := pinned(t)
	dir := filepath.Join(t.TempDir(), "out")
	fake := &fakeGo{version: "go1.26.8"}
	var log bytes.Buffer
	build := func(force bool) BuildResult {
		t.Helper()
		res, err := m.Build(t.Context(), BuildOptions{Dir: dir, Force: force, Runner: fake.run, Log: &log})
		if err != nil {
			t.Fatal(err)
		}
		if res.Dir != dir || res.GoVersion != fake.version {
			t.Fatalf("result %+v", res)
		}
		return res
	}

	if res := build(false); !res.Built {
		t.Fatal("first build reports the binaries up to date")
	}
	cmds := fake.builds()
	if len(cmds) != 2 {
		t.Fatalf("ran %d go builds, want 2", len(cmds))
	}
	minor := strings.Split(m.KubernetesVersion(), ".")[1]
	wantArgs := [][]string{
		{"go", "build", "-trimpath", "-buildvcs=false", "-o", "OUT", "./etcd"},
		{"go", "build", "-trimpath", "-buildvcs=false", "-ldflags",
			"-X k8s.io/component-base/version.gitVersion=" + m.KubernetesVersion() +
				" -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=" + minor,
			"-o", "OUT", "./kube-apiserver"},
	}
	for i, c := range cmds {
		args := slices.Clone(c.Args)
		o := slices.Index(args, "-o")
		out := args[o+1]
		args[o+1] = "OUT"
		if !slices.Equal(args, wantArgs[i]) {
			t.Errorf("command %d: %q\nwant %q", i, args, wantArgs[i])
		}
		if filepath.Dir(out) != dir {
			t.Errorf("command %d writes %s, not into %s", i, out, dir)
		}
		if c.Dir != filepath.Join(dir, ModuleDir) {
			t.Errorf("command %d runs in %s, want %s", i, c.Dir, filepath.Join(dir, ModuleDir))
		}
		if !slices.Contains(c.Env, "CGO_ENABLED=0") || !slices.Contains(c.Env, "GOWORK=off") {
			t.Errorf("command %d environment %q", i, c.Env)
		}
	}
	if b := Missing(dir); b != "" {
		t.Fatalf("%s missing after the build", b)
	}
	if got, _ := os.ReadFile(filepath.Join(dir, ModuleDir, "go.sum")); !bytes.Equal(got, m.File("go.sum")) {
		t.Fatal("the module's go.sum was not written")
	}
	if stamp, _ := os.ReadFile(filepath.Join(dir, StampFile)); string(stamp) != m.Hash()+" go1.26.8\n" {
		t.Fatalf("stamp %q", stamp)
	}
	assertNoTemporaries(t, dir)

	// Same pins, same Go: nothing to do.
	if res := build(false); res.Built || len(fake.builds()) != 0 {
		t.Fatal("second build with the same pins and Go rebuilt")
	}
	if !strings.Contains(log.String(), "up to date") {
		t.Fatalf("log does not say the binaries are up to date:\n%s", log.String())
	}
	// --force, and another Go version, rebuild.
	if res := build(true); !res.Built || len(fake.builds()) != 2 {
		t.Fatal("forced build did not rebuild")
	}
	fake.version = "go1.27.0"
	if res := build(false); !res.Built || len(fake.builds()) != 2 {
		t.Fatal("build with another Go version did not rebuild")
	}
	// A binary gone: rebuilt.
	if err := os.Remove(filepath.Join(dir, KubeAPIServer)); err != nil {
		t.Fatal(err)
	}
	if res := build(false); !res.Built {
		t.Fatal("build with kube-apiserver missing did not rebuild")
	}
}

// TestFailedBuildIsRedone: a failed build leaves no stamp and no temporary
// files, so the next run builds again.
func TestFailedBuildIsRedone(t *testing.T) {
	m := pinned(t)
	dir := t.TempDir()
	fake := &fakeGo{version: "go1.26.8", fail: KubeAPIServer}
	_, err := m.Build(t.Context(), BuildOptions{Dir: dir, Runner: fake.run})
	if err == nil || !strings.Contains(err.Error(), "build kube-apiserver") || !strings.Contains(err.Error(), "exit status 1") {
		t.Fatalf("build with a failing go build: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, StampFile)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("stamp after a failed build: %v", err)
	}
	assertNoTemporaries(t, dir)
	fake.fail = ""
	fake.builds()
	res, err := m.Build(t.Context(), BuildOptions{Dir: dir, Runner: fake.run})
	if err != nil || !res.Built || len(fake.builds()) != 2 {
		t.Fatalf("build after a failed one: %+v, %v", res, err)
	}
}

func TestBuildErrors(t *testing.T) {
	m := pinned(t)
	if _, err := m.Build(t.Context(), BuildOptions{}); err == nil {
		t.Fatal("Build without a folder succeeded")
	}
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	fake := &fakeGo{version: "go1.26.8"}
	if _, err := m.Build(t.Context(), BuildOptions{Dir: file, Runner: fake.run}); err == nil || len(fake.cmds) != 0 {
		t.Fatalf("Build into a file: %v after %d commands", err, len(fake.cmds))
	}
	fake.version = ""
	if _, err := m.Build(t.Context(), BuildOptions{Dir: t.TempDir(), Runner: fake.run}); err == nil || !strings.Contains(err.Error(), "GOVERSION") {
		t.Fatalf("Build with a go that names no version: %v", err)
	}
}

func TestExec(t *testing.T) {
	var out bytes.Buffer
	if err := Exec(t.Context(), Cmd{Dir: t.TempDir(), Args: []string{"go", "env", "GOVERSION"}, Env: []string{"GOWORK=off"}, Stdout: &out}); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out.String(), "go1.") {
		t.Fatalf("go env GOVERSION printed %q", out.String())
	}
	err := Exec(t.Context(), Cmd{Args: []string{"rein-no-such-command"}})
	if err == nil || !strings.Contains(err.Error(), "not on PATH") {
		t.Fatalf("missing command: %v", err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := Exec(ctx, Cmd{Args: []string{"go", "version"}}); err == nil {
		t.Fatal("command with a cancelled context succeeded")
	}
}

func assertNoTemporaries(t *testing.T, dir string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.Contains(e.Name(), ".tmp-") {
			t.Errorf("temporary file %s left in %s", e.Name(), dir)
		}
	}
}
