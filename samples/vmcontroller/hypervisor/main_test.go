package hypervisor_test

import (
	"os"
	"testing"
)

var tempDirs []string

// mkdirTemp makes a directory that outlives a single test (the built
// command is shared by the tests) and is removed by TestMain.
func mkdirTemp() (string, error) {
	dir, err := os.MkdirTemp("", "hypervisor-test-")
	if err == nil {
		tempDirs = append(tempDirs, dir)
	}
	return dir, err
}

func writeFile(path, content string) error { return os.WriteFile(path, []byte(content), 0o644) }

func TestMain(m *testing.M) {
	code := m.Run()
	for _, d := range tempDirs {
		_ = os.RemoveAll(d)
	}
	os.Exit(code)
}
