package testenv

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"
)

// AuditEvent is the part of an audit.k8s.io/v1 Event that tests and
// benchmarks read: who sent what, about which object, and when.
type AuditEvent struct {
	AuditID   string    `json:"auditID"`
	Stage     string    `json:"stage"`
	Verb      string    `json:"verb"`
	User      AuditUser `json:"user"`
	UserAgent string    `json:"userAgent"`
	// RequestURI is the request's path and query, e.g. with the
	// fieldManager of a write.
	RequestURI     string              `json:"requestURI"`
	ObjectRef      AuditObjectRef      `json:"objectRef"`
	ResponseStatus AuditResponseStatus `json:"responseStatus"`
	// RequestReceived is when the apiserver received the request.
	RequestReceived time.Time `json:"requestReceivedTimestamp"`
	// StageTimestamp is when the event's stage was reached: with this
	// package's policy, when the response was complete.
	StageTimestamp time.Time `json:"stageTimestamp"`
}

// AuditUser is the authenticated user of a request.
type AuditUser struct {
	Username string   `json:"username"`
	Groups   []string `json:"groups"`
}

// AuditObjectRef names the object a request was about.
type AuditObjectRef struct {
	Resource  string `json:"resource"`
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
}

// AuditResponseStatus is the response's HTTP status.
type AuditResponseStatus struct {
	Code int `json:"code"`
}

// ReadAudit calls fn for every event of the audit log from byte offset on,
// in the order the apiserver wrote them, and returns the offset after the
// last complete line: a later call from there sees only newer events. A
// line still being written is left for that later call.
func (e *Env) ReadAudit(offset int64, fn func(*AuditEvent)) (int64, error) {
	if e.auditLog == "" {
		return offset, errors.New("testenv: no audit log: start the control plane with Options.Audit")
	}
	f, err := os.Open(e.auditLog)
	if err != nil {
		return offset, fmt.Errorf("testenv: audit log: %w", err)
	}
	defer func() { _ = f.Close() }()
	fi, err := f.Stat()
	if err != nil {
		return offset, fmt.Errorf("testenv: audit log: %w", err)
	}
	if fi.Size() < offset {
		return offset, fmt.Errorf("testenv: the audit log %s has %d bytes, fewer than the offset %d to read from", e.auditLog, fi.Size(), offset)
	}
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		return offset, fmt.Errorf("testenv: audit log: %w", err)
	}
	r := bufio.NewReaderSize(f, 1<<20)
	for {
		line, err := r.ReadBytes('\n')
		if len(line) == 0 || line[len(line)-1] != '\n' {
			if err == nil || errors.Is(err, io.EOF) {
				return offset, nil
			}
			return offset, fmt.Errorf("testenv: audit log: %w", err)
		}
		var ev AuditEvent
		if err := json.Unmarshal(line, &ev); err != nil {
			return offset, fmt.Errorf("testenv: audit log %s at byte %d: %w", e.auditLog, offset, err)
		}
		offset += int64(len(line))
		fn(&ev)
	}
}
