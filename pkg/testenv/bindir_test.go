package testenv

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rein-k8s/rein/internal/testbin"
)

// binPlaces is a sandbox for findBinDir: a folder per place it can look at,
// the environment pointed at them (or cleared) and the working directory in
// a fake rein checkout or outside any.
type binPlaces struct {
	explicit, reinTestbin, assets, checkoutBin, cache string
	checkout, outside                                 string // working directories
}

func newBinPlaces(t *testing.T) *binPlaces {
	t.Helper()
	root := t.TempDir()
	p := &binPlaces{
		explicit:    filepath.Join(root, "explicit"),
		reinTestbin: filepath.Join(root, "rein-testbin-env"),
		assets:      filepath.Join(root, "kubebuilder-assets"),
		checkout:    filepath.Join(root, "rein", "pkg", "deep"),
		checkoutBin: filepath.Join(root, "rein", "bin"),
		outside:     filepath.Join(root, "elsewhere"),
	}
	for _, d := range []string{p.explicit, p.reinTestbin, p.assets, p.checkout, p.checkoutBin, p.outside} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(root, "rein", "go.mod"), []byte("module "+reinModule+"\n\ngo 1.26.0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// The user cache folder of rein-testbin, inside the sandbox.
	t.Setenv("XDG_CACHE_HOME", filepath.Join(root, "cache"))
	t.Setenv("HOME", filepath.Join(root, "home"))
	m, err := testbin.Pinned()
	if err != nil {
		t.Fatal(err)
	}
	if p.cache, err = m.DefaultDir(); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(p.cache, root) {
		t.Fatalf("rein-testbin's folder %s is outside the sandbox %s", p.cache, root)
	}
	t.Setenv(testbin.DirEnv, "")
	t.Setenv(testbin.AssetsEnv, "")
	t.Chdir(p.outside)
	return p
}

// fill puts fake executables of the named binaries (both when none are
// named) into dir.
func fill(t *testing.T, dir string, names ...string) {
	t.Helper()
	if len(names) == 0 {
		names = []string{"kube-apiserver", "etcd"}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		if err := os.WriteFile(filepath.Join(dir, n), []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
}

// TestBinDirLookupOrder fills every place with binaries and takes them away
// one by one, from the first in the order: each time the next is chosen.
func TestBinDirLookupOrder(t *testing.T) {
	p := newBinPlaces(t)
	for _, d := range []string{p.explicit, p.reinTestbin, p.assets, p.checkoutBin, p.cache} {
		fill(t, d)
	}
	t.Setenv(testbin.DirEnv, p.reinTestbin)
	t.Setenv(testbin.AssetsEnv, p.assets)
	t.Chdir(p.checkout)

	steps := []struct {
		want   string
		remove func()
	}{
		{p.explicit, func() { p.explicit = "" }},
		{p.reinTestbin, func() { t.Setenv(testbin.DirEnv, "") }},
		{p.assets, func() { t.Setenv(testbin.AssetsEnv, "") }},
		{p.checkoutBin, func() { t.Chdir(p.outside) }},
		{p.cache, nil},
	}
	for _, s := range steps {
		got, err := findBinDir(p.explicit)
		if err != nil {
			t.Fatalf("want %s: %v", s.want, err)
		}
		if got != s.want {
			t.Fatalf("found %s, want %s", got, s.want)
		}
		if s.remove != nil {
			s.remove()
		}
	}
}

// TestBinDirIncompleteCheckoutFallsBackToCache: bin/ of a checkout is
// searched, not decisive, so a half-built bin/ gives way to rein-testbin's
// folder.
func TestBinDirIncompleteCheckoutFallsBackToCache(t *testing.T) {
	p := newBinPlaces(t)
	fill(t, p.checkoutBin, "etcd")
	fill(t, p.cache)
	t.Chdir(p.checkout)
	if got, err := findBinDir(""); err != nil || got != p.cache {
		t.Fatalf("found %q, %v; want %s", got, err, p.cache)
	}
	// A binary that is not executable does not count.
	fill(t, p.checkoutBin, "kube-apiserver")
	if err := os.Chmod(filepath.Join(p.checkoutBin, "etcd"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got, err := findBinDir(""); err != nil || got != p.cache {
		t.Fatalf("found %q, %v; want %s", got, err, p.cache)
	}
}

// TestBinDirSetOnPurposeIsDecisive: an environment variable naming a folder
// without the binaries is an error, even when a later place has them.
func TestBinDirSetOnPurposeIsDecisive(t *testing.T) {
	for _, env := range []string{testbin.DirEnv, testbin.AssetsEnv} {
		t.Run(env, func(t *testing.T) {
			p := newBinPlaces(t)
			fill(t, p.assets, "kube-apiserver") // no etcd
			fill(t, p.checkoutBin)
			fill(t, p.cache)
			t.Chdir(p.checkout)
			t.Setenv(env, p.assets)
			_, err := findBinDir("")
			if err == nil {
				t.Fatalf("%s names a folder without etcd, and findBinDir found binaries elsewhere", env)
			}
			msg := err.Error()
			if !strings.Contains(msg, "$"+env+": "+p.assets+": etcd is missing") ||
				!strings.Contains(msg, "and no further") || strings.Contains(msg, p.cache) ||
				strings.Contains(msg, "unset it to look\n  at $"+env) {
				t.Fatalf("error does not name %s and its missing etcd, or names places not looked at:\n%s", env, msg)
			}
		})
	}
	p := newBinPlaces(t)
	fill(t, p.cache)
	if _, err := findBinDir(p.explicit); err == nil || !strings.Contains(err.Error(), "Options.BinDir: "+p.explicit+": etcd is missing") {
		t.Fatalf("empty Options.BinDir: %v", err)
	}
}

// TestBinDirNotFoundSaysWhereAndHow: with nothing anywhere, the error lists
// the five places in order, each with what was wrong, and says how to get
// the binaries.
func TestBinDirNotFoundSaysWhereAndHow(t *testing.T) {
	p := newBinPlaces(t)
	_, err := findBinDir("")
	if err == nil {
		t.Fatal("found binaries in an empty sandbox")
	}
	msg := err.Error()
	m, _ := testbin.Pinned()
	wantInOrder := []string{
		"testenv: no kube-apiserver and etcd found",
		"Options.BinDir: not set",
		"$REIN_TESTBIN: not set",
		"$KUBEBUILDER_ASSETS: not set",
		"bin/ of a rein checkout: the working directory " + p.outside + " is not inside one",
		"rein-testbin's folder for these pins: " + p.cache + ": no such folder",
		"kube-apiserver " + m.KubernetesVersion() + " and etcd " + m.EtcdVersion(),
		"outside a rein checkout: go run github.com/rein-k8s/rein/cmd/rein-testbin@",
		"or set REIN_TESTBIN to that folder",
		"in a rein checkout: make testbin",
		"set KUBEBUILDER_ASSETS to a folder that has both",
	}
	rest := msg
	for _, w := range wantInOrder {
		i := strings.Index(rest, w)
		if i < 0 {
			t.Fatalf("error lacks %q (or has it out of order):\n%s", w, msg)
		}
		rest = rest[i+len(w):]
	}

	// In a checkout whose bin/ is empty, `make testbin` comes first and the
	// bin/ folder is named.
	t.Chdir(p.checkout)
	fill(t, p.cache, "etcd")
	_, err = findBinDir("")
	if err == nil {
		t.Fatal("found binaries with an empty bin/ and half a cache folder")
	}
	msg = err.Error()
	for _, w := range []string{
		"bin/ of a rein checkout: " + p.checkoutBin + ": etcd is missing",
		p.cache + ": kube-apiserver is missing",
	} {
		if !strings.Contains(msg, w) {
			t.Fatalf("error lacks %q:\n%s", w, msg)
		}
	}
	if strings.Index(msg, "make testbin") > strings.Index(msg, "go run ") {
		t.Fatalf("in a checkout the error does not put make testbin first:\n%s", msg)
	}
}
