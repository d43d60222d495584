package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"
)

type auditEvent struct {
	AuditID   string `json:"auditID"`
	Stage     string `json:"stage"`
	Verb      string `json:"verb"`
	UserAgent string `json:"userAgent"`
	ObjectRef struct {
		Resource  string `json:"resource"`
		Namespace string `json:"namespace"`
	} `json:"objectRef"`
	ResponseStatus struct {
		Code int `json:"code"`
	} `json:"responseStatus"`
	RequestReceived time.Time `json:"requestReceivedTimestamp"`
	Completed       time.Time `json:"stageTimestamp"`
}

// auditSize is the audit log's current size: runs scan from there on.
func (d *driver) auditSize() int64 {
	fi, err := os.Stat(d.env.AuditLogPath())
	if err != nil {
		return 0
	}
	return fi.Size()
}

// scanAudit calls fn for every audit event of namespace ns written after offset.
func (d *driver) scanAudit(offset int64, fn func(ev *auditEvent)) {
	f, err := os.Open(d.env.AuditLogPath())
	must(err)
	defer func() { _ = f.Close() }()
	fi, err := f.Stat()
	must(err)
	if fi.Size() < offset {
		panic(fmt.Sprintf("the audit log is %d bytes, shorter than the run's start offset %d: was it rotated?", fi.Size(), offset))
	}
	_, err = f.Seek(offset, io.SeekStart)
	must(err)
	r := bufio.NewReaderSize(f, 1<<20)
	for {
		line, err := r.ReadBytes('\n')
		if len(line) > 0 && line[len(line)-1] == '\n' {
			var ev auditEvent
			if json.Unmarshal(line, &ev) == nil {
				fn(&ev)
			}
		}
		if err != nil {
			return
		}
	}
}

func isWrite(ev *auditEvent, ua string) bool {
	return ev.UserAgent == ua && ev.ObjectRef.Resource == "configmaps" && ev.Stage == "ResponseComplete" &&
		(ev.Verb == "patch" || ev.Verb == "update") && ev.ResponseStatus.Code < 300
}

// firstWrite is the arrival of ua's first successful ConfigMap write, waiting for it up to timeout.
func (d *driver) firstWrite(offset int64, ua string, timeout time.Duration) (time.Time, bool) {
	deadline := time.Now().Add(timeout)
	for {
		var first time.Time
		d.scanAudit(offset, func(ev *auditEvent) {
			if isWrite(ev, ua) && (first.IsZero() || ev.RequestReceived.Before(first)) {
				first = ev.RequestReceived
			}
		})
		if !first.IsZero() || time.Now().After(deadline) {
			return first, !first.IsZero()
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// lastWrite is the completion of ua's last successful ConfigMap write.
func (d *driver) lastWrite(offset int64, ua string) time.Time {
	var last time.Time
	d.scanAudit(offset, func(ev *auditEvent) {
		if isWrite(ev, ua) && ev.Completed.After(last) {
			last = ev.Completed
		}
	})
	return last
}

// requests counts distinct requests per user agent received in [from, to].
func (d *driver) requests(offset int64, from, to time.Time) map[string]int {
	seen := map[string]bool{}
	counts := map[string]int{}
	d.scanAudit(offset, func(ev *auditEvent) {
		if seen[ev.AuditID] || ev.RequestReceived.Before(from) || ev.RequestReceived.After(to) {
			return
		}
		seen[ev.AuditID] = true
		counts[ev.UserAgent]++
	})
	return counts
}

// saveAudit copies the audit log since the run began next to the run's
// process logs, for a failed run.
func (d *driver) saveAudit(r *run) {
	f, err := os.Open(d.env.AuditLogPath())
	if err != nil {
		return
	}
	defer func() { _ = f.Close() }()
	if _, err := f.Seek(r.offset, io.SeekStart); err != nil {
		return
	}
	out, err := os.Create(filepath.Join(d.logDir, r.tag+"-audit.log"))
	if err != nil {
		return
	}
	defer func() { _ = out.Close() }()
	_, _ = io.Copy(out, f)
}
