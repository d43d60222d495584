// Package audit reads the audit log of a control plane started with
// testenv.Options{Audit: true}, for rein's multi-replica tests and
// benchmarks: who sent what, about which object, and when, from the
// apiserver's own record.
package audit

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/rein-k8s/rein/pkg/testenv"
)

// Event is the part of an audit.k8s.io/v1 Event that tests and benchmarks
// read: who sent what, about which object, and when.
type Event struct {
	AuditID   string `json:"auditID"`
	Stage     string `json:"stage"`
	Verb      string `json:"verb"`
	User      User   `json:"user"`
	UserAgent string `json:"userAgent"`
	// RequestURI is the request's path and query, e.g. with the
	// fieldManager of a write.
	RequestURI     string         `json:"requestURI"`
	ObjectRef      ObjectRef      `json:"objectRef"`
	ResponseStatus ResponseStatus `json:"responseStatus"`
	// RequestReceived is when the apiserver received the request.
	RequestReceived time.Time `json:"requestReceivedTimestamp"`
	// StageTimestamp is when the event's stage was reached: with
	// testenv's audit policy, when the response was complete.
	StageTimestamp time.Time `json:"stageTimestamp"`
}

// User is the authenticated user of a request.
type User struct {
	Username string   `json:"username"`
	Groups   []string `json:"groups"`
}

// ObjectRef names the object a request was about.
type ObjectRef struct {
	Resource  string `json:"resource"`
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
}

// ResponseStatus is the response's HTTP status.
type ResponseStatus struct {
	Code int `json:"code"`
}

// Path is the audit log of env: the file audit.log in env.Dir(), JSON
// lines, written only when env was started with Options.Audit.
func Path(env *testenv.Env) string { return filepath.Join(env.Dir(), "audit.log") }

// Read calls fn for every event of env's audit log from byte offset on,
// in the order the apiserver wrote them, and returns the offset after the
// last complete line: a later call from there sees only newer events. A
// line still being written is left for that later call.
func Read(env *testenv.Env, offset int64, fn func(*Event)) (int64, error) {
	path := Path(env)
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return offset, errors.New("audit: no audit log: start the control plane with testenv.Options{Audit: true}")
	}
	if err != nil {
		return offset, fmt.Errorf("audit: %w", err)
	}
	defer func() { _ = f.Close() }()
	fi, err := f.Stat()
	if err != nil {
		return offset, fmt.Errorf("audit: %w", err)
	}
	if fi.Size() < offset {
		return offset, fmt.Errorf("audit: the audit log %s has %d bytes, fewer than the offset %d to read from", path, fi.Size(), offset)
	}
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		return offset, fmt.Errorf("audit: %w", err)
	}
	r := bufio.NewReaderSize(f, 1<<20)
	for {
		line, err := r.ReadBytes('\n')
		if len(line) == 0 || line[len(line)-1] != '\n' {
			if err == nil || errors.Is(err, io.EOF) {
				return offset, nil
			}
			return offset, fmt.Errorf("audit: %w", err)
		}
		var ev Event
		if err := json.Unmarshal(line, &ev); err != nil {
			return offset, fmt.Errorf("audit: %s at byte %d: %w", path, offset, err)
		}
		offset += int64(len(line))
		fn(&ev)
	}
}
