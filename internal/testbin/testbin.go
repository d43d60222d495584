// Package testbin holds the pinned versions of the control-plane binaries
// that rein's tests run, kube-apiserver (k8s.io/kubernetes) and etcd
// (go.etcd.io/etcd/server/v3), and builds them.
//
// The pins are a small Go module of their own, kept in the folder module/
// beside this file: go.mod with the replace directives that k8s.io/kubernetes
// needs, go.sum, and two tiny main packages. It is a module of its own so
// that these large dependency graphs never enter rein's go.mod. Its files are
// stored with a .txt suffix: a file named go.mod would make module/ a
// separate module, which go:embed cannot reach, and .go files importing
// k8s.io/kubernetes would be compiled as part of rein. They are embedded
// here, and that one copy is the only source of the pins: the command
// rein-testbin (for users, with `go run`), `make testbin` (which runs that
// command into bin/) and pkg/testenv (which looks for the binaries in the
// command's cache folder) all read it.
//
// To bump a pin, write the module out, change it with the go command and
// copy go.mod and go.sum back:
//
//	go run ./cmd/rein-testbin --module-only --dir /tmp/testbin   # prints /tmp/testbin/module
//	cd /tmp/testbin/module
//	# point the replace block at the new release, then
//	go get k8s.io/kubernetes@v1.38.0 k8s.io/component-base@v0.38.0
//	go mod tidy
//	cp go.mod "$REIN/internal/testbin/module/go.mod.txt"
//	cp go.sum "$REIN/internal/testbin/module/go.sum.txt"
package testbin

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
)

//go:embed module
var embedded embed.FS

// suffix ends the name of every stored module file; it is dropped when the
// module is written.
const suffix = ".txt"

// The packages of the module, each built into a binary of the same name.
const (
	KubeAPIServer = "kube-apiserver"
	Etcd          = "etcd"
)

// Binaries are the programs the module builds, in build order.
var Binaries = []string{Etcd, KubeAPIServer}

// The environment variables that name a folder holding the binaries, as
// pkg/testenv reads them (its package documentation has the lookup order):
// DirEnv is rein's, AssetsEnv is setup-envtest's (a folder with
// kube-apiserver, etcd and kubectl).
const (
	DirEnv    = "REIN_TESTBIN"
	AssetsEnv = "KUBEBUILDER_ASSETS"
)

// ModuleDir is the folder, inside a build folder, that the module is
// written to. The binaries go into the build folder itself.
const ModuleDir = "module"

// StampFile, in a build folder, records the hash of the module and the Go
// version the binaries there were built from and with.
const StampFile = ".testbin-stamp"

// Module is a testbin module: its files by slash-separated path, as they are
// written out.
type Module struct {
	files map[string][]byte
	// kubernetes and etcd are the pinned versions of k8s.io/kubernetes and
	// go.etcd.io/etcd/server/v3.
	kubernetes, etcd string
}

// Pinned returns the module embedded in this package: the pins of this
// version of rein.
func Pinned() (*Module, error) {
	sub, err := fs.Sub(embedded, "module")
	if err != nil {
		return nil, fmt.Errorf("testbin: embedded module: %w", err)
	}
	return Load(sub)
}

// Load reads a module from fsys, whose files are stored with a .txt suffix
// (go.mod.txt, go.sum.txt, kube-apiserver/main.go.txt, etcd/main.go.txt).
func Load(fsys fs.FS) (*Module, error) {
	m := &Module{files: map[string][]byte{}}
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		name, ok := strings.CutSuffix(p, suffix)
		if !ok {
			return fmt.Errorf("%s: module files are stored with a %s suffix", p, suffix)
		}
		data, err := fs.ReadFile(fsys, p)
		if err != nil {
			return err
		}
		m.files[name] = data
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("testbin: load module: %w", err)
	}
	for _, need := range []string{"go.mod", "go.sum", path.Join(KubeAPIServer, "main.go"), path.Join(Etcd, "main.go")} {
		if _, ok := m.files[need]; !ok {
			return nil, fmt.Errorf("testbin: load module: %s%s is missing", need, suffix)
		}
	}
	reqs := requirements(m.files["go.mod"])
	m.kubernetes, m.etcd = reqs["k8s.io/kubernetes"], reqs["go.etcd.io/etcd/server/v3"]
	if m.kubernetes == "" || m.etcd == "" {
		return nil, errors.New("testbin: load module: go.mod must require k8s.io/kubernetes and go.etcd.io/etcd/server/v3")
	}
	if len(strings.Split(m.kubernetes, ".")) < 3 {
		return nil, fmt.Errorf("testbin: load module: k8s.io/kubernetes version %q is not vMAJOR.MINOR.PATCH", m.kubernetes)
	}
	return m, nil
}

// requirements returns the module versions that the require lines of a
// go.mod file name (the go command formats these lines, so a line scan is
// enough, and rein needs no golang.org/x/mod for it).
func requirements(goMod []byte) map[string]string {
	reqs := map[string]string{}
	block := false
	for line := range strings.Lines(string(goMod)) {
		line, _, _ = strings.Cut(line, "//")
		f := strings.Fields(line)
		switch {
		case len(f) == 0:
		case f[0] == "require" && len(f) == 2 && f[1] == "(":
			block = true
		case block && f[0] == ")":
			block = false
		case block && len(f) == 2:
			reqs[f[0]] = f[1]
		case f[0] == "require" && len(f) == 3:
			reqs[f[1]] = f[2]
		}
	}
	return reqs
}

// KubernetesVersion is the pinned version of kube-apiserver.
func (m *Module) KubernetesVersion() string { return m.kubernetes }

// EtcdVersion is the pinned version of etcd.
func (m *Module) EtcdVersion() string { return m.etcd }

// File returns the content of a module file by its written path, such as
// "go.mod", or nil.
func (m *Module) File(name string) []byte { return m.files[name] }

// Files are the written paths of the module's files, sorted.
func (m *Module) Files() []string {
	names := make([]string, 0, len(m.files))
	for name := range m.files {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

// Hash is a short hash of everything that decides what the binaries are:
// the module's files and the go build commands that build them (but not
// the Go version, which the stamp file of a build folder records). It names
// the default build folder.
func (m *Module) Hash() string {
	h := sha256.New()
	fmt.Fprintf(h, "rein-testbin\n")
	for _, name := range m.Files() {
		fmt.Fprintf(h, "file %q %d\n", name, len(m.files[name]))
		h.Write(m.files[name])
	}
	for _, s := range m.steps(func(b string) string { return b }) {
		fmt.Fprintf(h, "build %q %q\n", s.Env, s.Args)
	}
	return hex.EncodeToString(h.Sum(nil))[:12]
}

// DefaultDir is the build folder that rein-testbin uses when it is not
// given one: <user cache folder>/rein/testbin/<Hash>. It holds the
// binaries, and the module in its subfolder ModuleDir.
func (m *Module) DefaultDir() (string, error) {
	cache, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("testbin: %w", err)
	}
	return filepath.Join(cache, "rein", "testbin", m.Hash()), nil
}

// Write writes the module's files into dir, creating it. Files that already
// have the right content are left alone; the others are replaced
// atomically, so a build running concurrently from the same folder never
// reads half a file.
func (m *Module) Write(dir string) error {
	for _, name := range m.Files() {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if have, err := os.ReadFile(p); err == nil && bytes.Equal(have, m.files[name]) {
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return fmt.Errorf("testbin: write module: %w", err)
		}
		if err := writeFileAtomic(p, m.files[name], 0o644); err != nil {
			return fmt.Errorf("testbin: write module: %w", err)
		}
	}
	return nil
}

// writeFileAtomic writes data to a temporary file beside p and renames it
// to p.
func writeFileAtomic(p string, data []byte, perm os.FileMode) error {
	tmp := tempName(p)
	if err := os.WriteFile(tmp, data, perm); err != nil {
		return err
	}
	if err := os.Rename(tmp, p); err != nil {
		_ = os.Remove(tmp)
		return err
	}
	return nil
}

// tempName is a name beside p for a file that is renamed to p when
// complete. It is unique, so that two processes never share one.
func tempName(p string) string {
	return filepath.Join(filepath.Dir(p), "."+filepath.Base(p)+".tmp-"+rand.Text()[:10])
}
