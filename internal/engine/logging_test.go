package engine_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"
	"github.com/sirupsen/logrus"
	"k8s.io/apimachinery/pkg/runtime"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/rein-k8s/rein/internal/engine"
	"github.com/rein-k8s/rein/internal/logbridge"
	"github.com/rein-k8s/rein/internal/testkit"
	"github.com/rein-k8s/rein/internal/testkit/factorytest"
	"github.com/rein-k8s/rein/pkg/fence"
)

// styles log the same four lines (info, error, debug, trace) the way
// handler code of each logging API does: logrus (Logger), logr under logr's
// context key, controller-runtime's log.FromContext (a ported operator's
// code, unchanged), and slog (Slog).
var styles = map[string]func(ctx context.Context, err error){
	"logrus": func(ctx context.Context, err error) {
		log := engine.Logger(ctx)
		log.WithFields(logrus.Fields{"vm": "a", "attempt": 2}).Info("reconciled")
		log.WithError(err).WithField("vm", "a").Error("failed")
		log.WithField("vm", "a").Debug("detail")
		log.WithField("vm", "a").Trace("more detail")
	},
	"logr":               func(ctx context.Context, err error) { logrCalls(logr.FromContextOrDiscard(ctx), err) },
	"controller-runtime": func(ctx context.Context, err error) { logrCalls(ctrllog.FromContext(ctx), err) },
	"slog": func(ctx context.Context, err error) {
		log := engine.Slog(ctx)
		log.Info("reconciled", "vm", "a", "attempt", 2)
		log.Error("failed", "error", err, "vm", "a")
		log.Debug("detail", "vm", "a")
		log.Log(ctx, slog.LevelDebug-4, "more detail", slog.String("vm", "a"))
	},
}

// sinks are where a factory's logs may go, each writing JSON lines to w
// with everything enabled: logrus itself, and logrus forwarding to an
// slog.Handler and to a logr.Logger (what framework.LogrusToSlog and
// LogrusToLogr return).
var sinks = map[string]func(w io.Writer) *logrus.Logger{
	"logrus": func(w io.Writer) *logrus.Logger {
		l := logrus.New()
		l.SetOutput(w)
		l.SetFormatter(&logrus.JSONFormatter{})
		l.SetLevel(logrus.TraceLevel)
		return l
	},
	"slog": func(w io.Writer) *logrus.Logger {
		return logbridge.ToSlog(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug - 4}))
	},
	"logr": func(w io.Writer) *logrus.Logger {
		return logbridge.ToLogr(funcr.NewJSON(func(obj string) { fmt.Fprintln(w, obj) }, funcr.Options{Verbosity: 2}))
	},
}

// TestHandlerLoggersWriteTheSameLines: in a real controller under a
// leadership term, a handler logging through logrus, logr,
// controller-runtime's log.FromContext or slog writes the same lines to
// the one sink of the factory: the controller, handler, key and the
// term's token, the call's own key-values and error, at the same level;
// and so does the engine's own line about the handler's failure. Whatever
// the sink: logrus, or an slog.Handler or a logr.Logger that logrus
// forwards to.
func TestHandlerLoggersWriteTheSameLines(t *testing.T) {
	for sinkName, newLogger := range sinks {
		t.Run(sinkName, func(t *testing.T) {
			ns := newNamespace(t)
			out := &testkit.SyncBuffer{}
			f := newFactory(t, ns, engine.Options{Logger: logrus.NewEntry(newLogger(out)).WithField("replica", "r1")})
			var wg sync.WaitGroup
			boom := errors.New("boom")
			for name, logLines := range styles {
				wg.Add(1)
				var once sync.Once
				controller(t, f, factorytest.ConfigMaps).AddHandler(t.Context(), name, func(ctx context.Context, key string, obj runtime.Object) (runtime.Object, error) {
					if obj == nil {
						return nil, nil
					}
					first := false
					once.Do(func() {
						logLines(ctx, boom)
						first = true
						wg.Done()
					})
					if first && name == "logrus" {
						return nil, boom // the engine logs it, then retries
					}
					return nil, nil
				})
			}
			tok := fence.Token{Namespace: ns, Lease: "logs", Term: 7}
			startWithTerm(t, f, fence.WithHold(t.Context(), fence.Fixed(tok)))
			createConfigMap(t, ns, "greet", nil)
			done := make(chan struct{})
			go func() { wg.Wait(); close(done) }()
			receive(t, done, 30*time.Second, "every handler's lines")
			eventually(t, 10*time.Second, "the engine's line about the failure", func() bool {
				return strings.Contains(out.String(), "handler failed; retrying with backoff")
			})

			lines := map[string]map[string]map[string]any{} // message → handler → fields
			for line := range strings.Lines(out.String()) {
				var m map[string]any
				if err := json.Unmarshal([]byte(line), &m); err != nil {
					t.Fatalf("not a JSON line: %q: %v", line, err)
				}
				msg, _ := m["msg"].(string)
				handler, _ := m["handler"].(string)
				if handler == "" {
					continue // not a handler's line
				}
				if lines[msg] == nil {
					lines[msg] = map[string]map[string]any{}
				}
				if _, seen := lines[msg][handler]; !seen { // the first of each
					lines[msg][handler] = m
				}
			}
			t.Logf("the logrus handler's lines:\n%s", show(lines, "logrus"))

			want := map[string]any{"controller": "configmaps", "handler": "logrus", "key": ns + "/greet", "token": tok.String(), "replica": "r1", "vm": "a"}
			wantExtra := map[string]map[string]any{
				"reconciled": {"attempt": float64(2)},
				"failed":     {"error": "boom"},
			}
			for _, msg := range []string{"reconciled", "failed", "detail", "more detail"} {
				ref := lines[msg]["logrus"]
				if ref == nil {
					t.Fatalf("the logrus handler wrote no %q line", msg)
				}
				for k, v := range want {
					if ref[k] != v {
						t.Errorf("%q: %s=%v, want %v", msg, k, ref[k], v)
					}
				}
				for k, v := range wantExtra[msg] {
					if ref[k] != v {
						t.Errorf("%q: %s=%v, want %v", msg, k, ref[k], v)
					}
				}
				for name := range styles {
					got := lines[msg][name]
					if got == nil {
						t.Errorf("the %s handler wrote no %q line", name, msg)
						continue
					}
					if diff := fieldDiff(ref, got); diff != "" {
						t.Errorf("%q: the %s handler's line differs from the logrus one's: %s", msg, name, diff)
					}
				}
			}
			engineLine := lines["handler failed; retrying with backoff"]["logrus"]
			if engineLine == nil || engineLine["token"] != tok.String() || engineLine["key"] != ns+"/greet" || engineLine["error"] != "boom" {
				t.Errorf("the engine's failure line %v, want the token, key and error", engineLine)
			}
		})
	}
}

// fieldDiff compares two lines of one sink, but for the handler's name and
// the time.
func fieldDiff(want, got map[string]any) string {
	var diffs []string
	for _, k := range slices.Sorted(maps.Keys(merge(want, got))) {
		switch k {
		case "handler", "time", "ts":
			continue
		}
		if fmt.Sprint(want[k]) != fmt.Sprint(got[k]) {
			diffs = append(diffs, fmt.Sprintf("%s=%v, want %v", k, got[k], want[k]))
		}
	}
	return strings.Join(diffs, "; ")
}

func merge(a, b map[string]any) map[string]any {
	m := maps.Clone(a)
	maps.Copy(m, b)
	return m
}

func show(lines map[string]map[string]map[string]any, handler string) string {
	var b strings.Builder
	for _, msg := range slices.Sorted(maps.Keys(lines)) {
		if m := lines[msg][handler]; m != nil {
			j, _ := json.Marshal(m)
			fmt.Fprintf(&b, "  %s\n", j)
		}
	}
	return b.String()
}

// logrCalls are a ported reconciler's log calls, the same whether it finds
// its logr.Logger with logr's context key or controller-runtime's helper.
func logrCalls(log logr.Logger, err error) {
	log.Info("reconciled", "vm", "a", "attempt", 2)
	log.Error(err, "failed", "vm", "a")
	log.V(1).Info("detail", "vm", "a")
	log.V(2).Info("more detail", "vm", "a")
}
