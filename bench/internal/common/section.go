package common

import (
	"os"
	"strings"
)

// WriteSection replaces the section of path between begin and end (the
// markers section starts and ends with), or appends it.
func WriteSection(path, section, begin, end string) error {
	old, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		return err
	}
	s := string(old)
	if i := strings.Index(s, begin); i >= 0 {
		if j := strings.Index(s[i:], end); j >= 0 {
			rest := strings.TrimPrefix(s[i+j+len(end):], "\n")
			return os.WriteFile(path, []byte(s[:i]+section+rest), 0o644)
		}
	}
	if s != "" && !strings.HasSuffix(s, "\n\n") {
		s = strings.TrimRight(s, "\n") + "\n\n"
	}
	return os.WriteFile(path, []byte(s+section), 0o644)
}
