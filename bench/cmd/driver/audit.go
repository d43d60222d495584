package main

import (
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/rein-k8s/rein/internal/testkit/audit"
)

// auditSize is the offset after the audit log's last complete line: runs
// scan from there on. (The file's size may fall inside a line the
// apiserver is still writing, and a scan from there fails.)
func (d *driver) auditSize() int64 {
	d.auditEnd, _ = audit.Read(d.env, d.auditEnd, func(*audit.Event) {})
	return d.auditEnd
}

// scanAudit calls fn for every audit event written after offset.
func (d *driver) scanAudit(offset int64, fn func(ev *audit.Event)) {
	_, err := audit.Read(d.env, offset, fn)
	must(err)
}

func isWrite(ev *audit.Event, ua string) bool {
	return ev.UserAgent == ua && isConfigMapWrite(ev)
}

// isConfigMapWrite tells a successful ConfigMap write, of any user agent.
func isConfigMapWrite(ev *audit.Event) bool {
	return ev.ObjectRef.Resource == "configmaps" && ev.Stage == "ResponseComplete" &&
		(ev.Verb == "patch" || ev.Verb == "update") && ev.ResponseStatus.Code < 300
}

// writes are one user agent's successful ConfigMap writes.
type writes struct {
	count int
	// first is the arrival of the first, last the completion of the last.
	first, last time.Time
}

// writesByUA reads the audit log from offset once: every user agent's
// successful ConfigMap writes.
func (d *driver) writesByUA(offset int64) map[string]*writes {
	out := map[string]*writes{}
	d.scanAudit(offset, func(ev *audit.Event) {
		if !isConfigMapWrite(ev) {
			return
		}
		w := out[ev.UserAgent]
		if w == nil {
			w = &writes{first: ev.RequestReceived}
			out[ev.UserAgent] = w
		}
		w.count++
		if ev.RequestReceived.Before(w.first) {
			w.first = ev.RequestReceived
		}
		if ev.StageTimestamp.After(w.last) {
			w.last = ev.StageTimestamp
		}
	})
	return out
}

// firstWrite is the arrival of ua's first successful ConfigMap write,
// waiting for it up to timeout. Each poll reads on from where the last one
// stopped.
func (d *driver) firstWrite(offset int64, ua string, timeout time.Duration) (time.Time, bool) {
	deadline := time.Now().Add(timeout)
	var first time.Time
	for {
		next, err := audit.Read(d.env, offset, func(ev *audit.Event) {
			if isWrite(ev, ua) && (first.IsZero() || ev.RequestReceived.Before(first)) {
				first = ev.RequestReceived
			}
		})
		must(err)
		offset = next
		if !first.IsZero() || time.Now().After(deadline) {
			return first, !first.IsZero()
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// awaitWrites waits, reading the audit log on from offset, until procs
// have made n successful ConfigMap writes in all, and returns the
// completion of the last of them.
func (d *driver) awaitWrites(offset int64, procs []*proc, n int, timeout time.Duration) (time.Time, bool) {
	uas := map[string]bool{}
	for _, p := range procs {
		uas[p.ua] = true
	}
	deadline := time.Now().Add(timeout)
	count := 0
	var last time.Time
	for {
		next, err := audit.Read(d.env, offset, func(ev *audit.Event) {
			if uas[ev.UserAgent] && isConfigMapWrite(ev) {
				count++
				if ev.StageTimestamp.After(last) {
					last = ev.StageTimestamp
				}
			}
		})
		must(err)
		offset = next
		if count >= n || time.Now().After(deadline) {
			return last, count >= n
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// lastWrite is the completion of ua's last successful ConfigMap write.
func (d *driver) lastWrite(offset int64, ua string) time.Time {
	var last time.Time
	d.scanAudit(offset, func(ev *audit.Event) {
		if isWrite(ev, ua) && ev.StageTimestamp.After(last) {
			last = ev.StageTimestamp
		}
	})
	return last
}

// requests counts distinct requests per user agent received in [from, to].
func (d *driver) requests(offset int64, from, to time.Time) map[string]int {
	seen := map[string]bool{}
	counts := map[string]int{}
	d.scanAudit(offset, func(ev *audit.Event) {
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
	f, err := os.Open(audit.Path(d.env))
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
