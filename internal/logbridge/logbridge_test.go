package logbridge

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"
	"github.com/sirupsen/logrus"
	"github.com/sirupsen/logrus/hooks/test"
)

func capture(level logrus.Level) (*logrus.Entry, *test.Hook) {
	l, hook := test.NewNullLogger()
	l.SetLevel(level)
	return logrus.NewEntry(l).WithField("controller", "c"), hook
}

func wantEntry(t *testing.T, e *logrus.Entry, level logrus.Level, msg string, fields logrus.Fields) {
	t.Helper()
	if e == nil {
		t.Fatalf("no entry, want %s %q", level, msg)
	}
	if e.Level != level || e.Message != msg {
		t.Errorf("entry %s %q, want %s %q", e.Level, e.Message, level, msg)
	}
	if len(e.Data) != len(fields) {
		t.Errorf("fields %v, want %v", e.Data, fields)
	}
	for k, v := range fields {
		if got, ok := e.Data[k]; !ok || got != v {
			t.Errorf("field %s=%v, want %v (all: %v)", k, got, v, e.Data)
		}
	}
}

type secret string

func (s secret) MarshalLog() any { return "<redacted>" }

type nilMarshaler struct{ v *string }

func (n *nilMarshaler) MarshalLog() any { return *n.v }

func TestLogrVerbosityAndFields(t *testing.T) {
	entry, hook := capture(logrus.TraceLevel)
	log := Logr(entry, HandlerTraceFrom)
	boom := errors.New("boom")
	for _, c := range []struct {
		log   func()
		level logrus.Level
		msg   string
		extra logrus.Fields
	}{
		{func() { log.Info("i", "k", 1) }, logrus.InfoLevel, "i", logrus.Fields{"k": 1}},
		{func() { log.V(1).Info("d") }, logrus.DebugLevel, "d", nil},
		{func() { log.V(2).Info("t") }, logrus.TraceLevel, "t", nil},
		{func() { log.V(7).Info("t7") }, logrus.TraceLevel, "t7", nil},
		{func() { log.V(3).Error(boom, "e", "k", "v") }, logrus.ErrorLevel, "e", logrus.Fields{"k": "v", logrus.ErrorKey: boom}},
		{func() { log.Error(nil, "e without err") }, logrus.ErrorLevel, "e without err", nil},
		{func() { log.Info("odd", "lonely") }, logrus.InfoLevel, "odd", logrus.Fields{"lonely": "<no-value>"}},
		{func() { log.Info("keys", 3, "three", "a key", "spaced") }, logrus.InfoLevel, "keys", logrus.Fields{"3": "three", "a_key": "spaced"}},
		{func() { log.Info("marshal", "password", secret("hunter2")) }, logrus.InfoLevel, "marshal", logrus.Fields{"password": "<redacted>"}},
		{func() { log.WithValues("w", 1).WithName("a").WithName("b").Info("named") }, logrus.InfoLevel, "named", logrus.Fields{"w": 1, "logger": "a/b"}},
	} {
		hook.Reset()
		c.log()
		fields := logrus.Fields{"controller": "c"}
		for k, v := range c.extra {
			fields[k] = v
		}
		wantEntry(t, hook.LastEntry(), c.level, c.msg, fields)
	}

	hook.Reset()
	log.Info("nil marshaler", "m", &nilMarshaler{})
	if got := hook.LastEntry().Data["m"]; !strings.HasPrefix(got.(string), "<panic: ") {
		t.Errorf("a MarshalLog that panics logs %v, want <panic: ...>", got)
	}

	klog := Logr(entry, KlogTraceFrom)
	hook.Reset()
	klog.V(2).Info("klog v2")
	wantEntry(t, hook.LastEntry(), logrus.DebugLevel, "klog v2", logrus.Fields{"controller": "c"})
	klog.V(3).Info("klog v3")
	wantEntry(t, hook.LastEntry(), logrus.TraceLevel, "klog v3", logrus.Fields{"controller": "c"})
}

func TestLogrEnabledFollowsLogrus(t *testing.T) {
	entry, hook := capture(logrus.DebugLevel)
	log := Logr(entry, HandlerTraceFrom)
	if !log.V(1).Enabled() || log.V(2).Enabled() {
		t.Errorf("at debug: V(1) enabled %v, V(2) %v; want true, false", log.V(1).Enabled(), log.V(2).Enabled())
	}
	log.V(2).Info("dropped")
	if len(hook.AllEntries()) != 0 {
		t.Errorf("V(2) logged at debug: %v", hook.AllEntries())
	}
	entry.Logger.SetLevel(logrus.ErrorLevel)
	if log.Enabled() {
		t.Error("V(0) enabled at error level")
	}
	log.Error(errors.New("x"), "still")
	if len(hook.AllEntries()) != 1 {
		t.Errorf("Error not logged at error level: %v", hook.AllEntries())
	}
}

type lazy struct{}

func (lazy) LogValue() slog.Value { return slog.StringValue("resolved") }

func TestSlogLevelsAttrsAndGroups(t *testing.T) {
	entry, hook := capture(logrus.TraceLevel)
	log := slog.New(Slog(entry))
	ctx := context.WithValue(context.Background(), ctxKey{}, "mine")
	for _, c := range []struct {
		level slog.Level
		want  logrus.Level
	}{
		{slog.LevelError + 2, logrus.ErrorLevel}, {slog.LevelError, logrus.ErrorLevel},
		{slog.LevelWarn, logrus.WarnLevel}, {slog.LevelInfo, logrus.InfoLevel}, {slog.LevelInfo + 1, logrus.InfoLevel},
		{slog.LevelDebug, logrus.DebugLevel}, {slog.LevelDebug + 3, logrus.DebugLevel},
		{slog.LevelDebug - 1, logrus.TraceLevel}, {slog.LevelDebug - 4, logrus.TraceLevel},
	} {
		hook.Reset()
		log.Log(ctx, c.level, "m")
		if e := hook.LastEntry(); e == nil || e.Level != c.want {
			t.Errorf("slog %v: entry %v, want level %v", c.level, e, c.want)
		}
	}

	hook.Reset()
	boom := errors.New("boom")
	log.With("w", 1).WithGroup("req").With("id", 7).WithGroup("").
		ErrorContext(ctx, "failed", "error", boom, slog.Group("user", "name", "ann", slog.Group("", "inline", true)),
			slog.Group("empty"), slog.Attr{}, "lazy", lazy{}, "d", time.Second)
	e := hook.LastEntry()
	wantEntry(t, e, logrus.ErrorLevel, "failed", logrus.Fields{
		"controller": "c", "w": int64(1), "req.id": int64(7), "req.error": boom,
		"req.user.name": "ann", "req.user.inline": true, "req.lazy": "resolved", "req.d": time.Second,
	})
	if e.Context != ctx {
		t.Error("the entry does not carry the call's context")
	}

	// The record's time is the entry's.
	hook.Reset()
	at := time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)
	r := slog.NewRecord(at, slog.LevelInfo, "at", 0)
	if err := Slog(entry).Handle(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	if got := hook.LastEntry().Time; !got.Equal(at) {
		t.Errorf("time %v, want %v", got, at)
	}

	entry.Logger.SetLevel(logrus.InfoLevel)
	if h := Slog(entry); h.Enabled(ctx, slog.LevelDebug) || !h.Enabled(ctx, slog.LevelInfo) {
		t.Error("at info: Debug enabled or Info not")
	}
}

func TestToLogr(t *testing.T) {
	var lines []map[string]any
	sink := funcr.NewJSON(func(obj string) {
		var m map[string]any
		if err := json.Unmarshal([]byte(obj), &m); err != nil {
			t.Fatalf("%q: %v", obj, err)
		}
		lines = append(lines, m)
	}, funcr.Options{Verbosity: 1})
	l := ToLogr(sink)
	if l.GetLevel() != logrus.DebugLevel {
		t.Errorf("level %v for a logr.Logger at V(1), want debug", l.GetLevel())
	}
	if !Forwards(l.Formatter) {
		t.Error("Forwards is false for ToLogr's formatter")
	}
	l.SetLevel(logrus.TraceLevel) // the sink still drops V(2)
	log := logrus.NewEntry(l).WithFields(logrus.Fields{"b": 2, "a": "x"})
	log.WithError(errors.New("boom")).Error("e")
	log.WithError(errors.New("kept")).Warn("w")
	log.Info("i")
	log.Debug("d")
	log.Trace("t")
	want := []map[string]any{
		{"msg": "e", "error": "boom", "a": "x", "b": float64(2)},
		{"msg": "w", "error": "kept", "a": "x", "b": float64(2), "level": float64(0)},
		{"msg": "i", "a": "x", "b": float64(2), "level": float64(0)},
		{"msg": "d", "a": "x", "b": float64(2), "level": float64(1)},
	}
	if len(lines) != len(want) {
		t.Fatalf("lines %v, want %v", lines, want)
	}
	for i, w := range want {
		for k, v := range w {
			if lines[i][k] != v {
				t.Errorf("line %d: %s=%v, want %v (%v)", i, k, lines[i][k], v, lines[i])
			}
		}
	}

	for v, level := range map[int]logrus.Level{0: logrus.InfoLevel, 2: logrus.TraceLevel, 5: logrus.TraceLevel} {
		if got := ToLogr(funcr.New(func(string, string) {}, funcr.Options{Verbosity: v})).GetLevel(); got != level {
			t.Errorf("a logr.Logger at V(%d): level %v, want %v", v, got, level)
		}
	}
	if got := ToLogr(logr.Discard()).GetLevel(); got != logrus.ErrorLevel {
		t.Errorf("logr.Discard(): level %v, want error", got)
	}
}

type ctxKey struct{}

// ctxHandler records the context of each record it handles.
type ctxHandler struct {
	slog.Handler
	ctxs *[]context.Context
}

func (h ctxHandler) Handle(ctx context.Context, r slog.Record) error {
	*h.ctxs = append(*h.ctxs, ctx)
	return h.Handler.Handle(ctx, r)
}

func TestToSlog(t *testing.T) {
	var out bytes.Buffer
	var ctxs []context.Context
	h := ctxHandler{slog.NewJSONHandler(&out, &slog.HandlerOptions{Level: slog.LevelDebug}), &ctxs}
	l := ToSlog(h)
	if l.GetLevel() != logrus.DebugLevel {
		t.Errorf("level %v for a handler at Debug, want debug", l.GetLevel())
	}
	if !Forwards(l.Formatter) || Forwards(&logrus.JSONFormatter{}) {
		t.Error("Forwards is wrong")
	}
	l.SetLevel(logrus.TraceLevel) // the handler still drops trace
	at := time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)
	ctx := context.WithValue(context.Background(), ctxKey{}, 1)
	log := logrus.NewEntry(l).WithField("k", "v").WithTime(at)
	log.WithContext(ctx).WithError(errors.New("boom")).Error("e")
	log.Warn("w")
	log.Info("i")
	log.Debug("d")
	log.Trace("t")
	var levels []string
	for line := range strings.Lines(out.String()) {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatal(err)
		}
		levels = append(levels, m["level"].(string)+" "+m["msg"].(string))
		if m["k"] != "v" || m["time"] != "2020-01-02T03:04:05Z" {
			t.Errorf("line %v: want k=v and the entry's time", m)
		}
		if m["msg"] == "e" && m["error"] != "boom" {
			t.Errorf("line %v: want error=boom", m)
		}
	}
	if got, want := strings.Join(levels, ", "), "ERROR e, WARN w, INFO i, DEBUG d"; got != want {
		t.Errorf("lines %s, want %s", got, want)
	}
	if len(ctxs) == 0 || ctxs[0].Value(ctxKey{}) != 1 {
		t.Error("the handler did not get the entry's context")
	}

	for level, want := range map[slog.Level]logrus.Level{slog.LevelDebug - 4: logrus.TraceLevel, slog.LevelInfo: logrus.InfoLevel, slog.LevelWarn: logrus.WarnLevel, slog.LevelError: logrus.ErrorLevel, slog.LevelError + 1: logrus.ErrorLevel} {
		if got := ToSlog(slog.NewTextHandler(&out, &slog.HandlerOptions{Level: level})).GetLevel(); got != want {
			t.Errorf("a handler at %v: level %v, want %v", level, got, want)
		}
	}
}
