package testenv

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// reinModule is the module path that marks the root of the rein repository.
const reinModule = "github.com/rein-k8s/rein"

// binaries are the programs a control plane needs.
var binaries = []string{"kube-apiserver", "etcd"}

// findBinDir returns the folder holding kube-apiserver and etcd: explicit,
// else $REIN_TESTBIN, else bin/ at the root of the rein repository that
// contains the working directory. It checks that both binaries are there.
func findBinDir(explicit string) (string, error) {
	dir := explicit
	if dir == "" {
		dir = os.Getenv(BinDirEnv)
	}
	if dir == "" {
		wd, err := os.Getwd()
		if err != nil {
			return "", fmt.Errorf("testenv: %w", err)
		}
		root, err := repoRoot(wd)
		if err != nil {
			return "", err
		}
		dir = filepath.Join(root, "bin")
	}
	for _, name := range binaries {
		path := filepath.Join(dir, name)
		info, err := os.Stat(path)
		if err != nil || info.IsDir() || info.Mode()&0o111 == 0 {
			return "", fmt.Errorf("testenv: %s is missing from %s: run `make testbin` at the root of the rein repository to build kube-apiserver and etcd from pinned Go modules, or set %s to a folder that has them", name, dir, BinDirEnv)
		}
	}
	return dir, nil
}

// repoRoot walks up from dir to the folder whose go.mod declares the rein
// module. Nested modules (bench/, hack/testbin/) are passed over.
func repoRoot(dir string) (string, error) {
	for d := dir; ; {
		if isReinModule(filepath.Join(d, "go.mod")) {
			return d, nil
		}
		parent := filepath.Dir(d)
		if parent == d {
			return "", errors.New("testenv: cannot find the bin/ folder with kube-apiserver and etcd: " +
				dir + " is not inside the rein repository; set " + BinDirEnv + " or Options.BinDir")
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
