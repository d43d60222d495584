package testenv

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"

	"github.com/rein-k8s/rein/internal/testbin"
)

// reinModule is the module path that marks the root of the rein repository.
const reinModule = "github.com/rein-k8s/rein"

// testbinCommand is the package of the command that builds the binaries.
const testbinCommand = reinModule + "/cmd/rein-testbin"

// place is one place findBinDir looks in, and what it found there.
type place struct {
	name string // how the error names it
	dir  string // "" when not set or not found
	note string // why it is not used: "not set", "kube-apiserver is missing", ...
}

// findBinDir returns the folder holding kube-apiserver and etcd. It looks,
// in this order, at
//
//  1. explicit (Options.BinDir),
//  2. $REIN_TESTBIN,
//  3. $KUBEBUILDER_ASSETS (setup-envtest's folders),
//  4. bin/ at the root of the rein checkout that contains the working
//     directory (`make testbin` builds there),
//  5. the default folder of rein-testbin for this version's pins.
//
// The first of 1-3 that is set decides: a folder named on purpose that lacks
// a binary is an error, never passed over for binaries of some other version.
// 4 and 5 are searched: the first with both binaries wins. The error when
// nothing is found names every place looked at and how to get the binaries.
func findBinDir(explicit string) (string, error) {
	var looked []place
	set := []place{
		{name: "Options.BinDir", dir: explicit},
		{name: "$" + testbin.DirEnv, dir: os.Getenv(testbin.DirEnv)},
		{name: "$" + testbin.AssetsEnv, dir: os.Getenv(testbin.AssetsEnv)},
	}
	for i, p := range set {
		if p.dir == "" {
			p.note = "not set"
			looked = append(looked, p)
			continue
		}
		if p.note = lacks(p.dir); p.note != "" {
			var later []string
			for _, q := range set[i+1:] {
				later = append(later, q.name)
			}
			return "", notFound(append(looked, p), append(later, "bin/ of a rein checkout", "rein-testbin's folder"))
		}
		return p.dir, nil
	}

	checkout := place{name: "bin/ of a rein checkout"}
	if wd, err := os.Getwd(); err != nil {
		checkout.note = err.Error()
	} else if root := repoRoot(wd); root == "" {
		checkout.note = "the working directory " + wd + " is not inside one"
	} else {
		checkout.dir = filepath.Join(root, "bin")
	}
	cache := place{name: "rein-testbin's folder for these pins"}
	if m, err := testbin.Pinned(); err != nil {
		cache.note = err.Error()
	} else if cache.dir, err = m.DefaultDir(); err != nil {
		cache.note = err.Error()
	}
	for _, p := range []place{checkout, cache} {
		if p.dir == "" {
			looked = append(looked, p)
			continue
		}
		if p.note = lacks(p.dir); p.note == "" {
			return p.dir, nil
		}
		looked = append(looked, p)
	}
	return "", notFound(looked, nil)
}

// lacks says what dir lacks of kube-apiserver and etcd, or "" if nothing.
func lacks(dir string) string {
	if info, err := os.Stat(dir); err != nil || !info.IsDir() {
		return "no such folder"
	}
	if missing := testbin.Missing(dir); missing != "" {
		return missing + " is missing (or not an executable file)"
	}
	return ""
}

// notFound is the error that lists where findBinDir looked and says how to
// get the binaries. notTried names the places after the last one looked at
// when that one was set on purpose, and so decided.
func notFound(looked []place, notTried []string) error {
	var b strings.Builder
	b.WriteString("testenv: no kube-apiserver and etcd found. Looked at, in this order:\n")
	inCheckout := false
	for _, p := range looked {
		if p.dir == "" {
			fmt.Fprintf(&b, "  %s: %s\n", p.name, p.note)
			continue
		}
		fmt.Fprintf(&b, "  %s: %s: %s\n", p.name, p.dir, p.note)
		inCheckout = inCheckout || p.name == "bin/ of a rein checkout"
	}
	if len(notTried) > 0 {
		fmt.Fprintf(&b, "  and no further: a folder set on purpose is used as it is (fix it, or unset it to look\n"+
			"  at %s)\n", strings.Join(notTried, ", "))
	}
	kube, etcd := "", ""
	if m, err := testbin.Pinned(); err == nil {
		kube, etcd = " "+m.KubernetesVersion(), " "+m.EtcdVersion()
	}
	goRun := "go run " + testbinCommand + "@"
	if v := reinVersion(); v != "" {
		goRun += v
	} else {
		goRun += "<the rein version in your go.mod>"
	}
	fmt.Fprintf(&b, "To get kube-apiserver%s and etcd%s, built from the Go modules rein pins:\n", kube, etcd)
	outside := "  - outside a rein checkout: " + goRun + "\n" +
		"    (15-20 minutes the first time on 2 cores); tests then find the binaries in the folder it\n" +
		"    prints by themselves, or set " + testbin.DirEnv + " to that folder\n"
	inside := "  - in a rein checkout: make testbin (builds into bin/)\n"
	if inCheckout {
		b.WriteString(inside + outside)
	} else {
		b.WriteString(outside + inside)
	}
	b.WriteString("  - or set " + testbin.AssetsEnv + " to a folder that has both, such as one of setup-envtest's")
	return errors.New(b.String())
}

// reinVersion is the version of rein that the running program was built
// with, as a dependency: the one to pass to `go run ...@`. It is "" for a
// build of rein itself, a replaced rein, or without build information.
func reinVersion() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return ""
	}
	for _, d := range info.Deps {
		if d.Path == reinModule && d.Replace == nil && strings.HasPrefix(d.Version, "v") {
			return d.Version
		}
	}
	return ""
}

// repoRoot walks up from dir to the folder whose go.mod declares the rein
// module, or returns "". Nested modules (bench/) are passed over.
func repoRoot(dir string) string {
	for d := dir; ; {
		if isReinModule(filepath.Join(d, "go.mod")) {
			return d
		}
		parent := filepath.Dir(d)
		if parent == d {
			return ""
		}
		d = parent
	}
}

func isReinModule(goMod string) bool {
	f, err := os.Open(goMod)
	if err != nil {
		return false
	}
	defer func() { _ = f.Close() }()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if rest, ok := strings.CutPrefix(line, "module "); ok {
			return strings.Trim(strings.TrimSpace(rest), `"`) == reinModule
		}
	}
	return false
}
