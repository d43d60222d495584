// Package logbridge joins logrus, logr and slog, so that one sink gets
// every line whatever API wrote it.
//
// Into logrus: Logr and Slog are a logr.Logger and an slog.Handler that
// write through a *logrus.Entry (a handler's, with its fields), key-value
// pairs and attributes becoming fields.
//
// Out of logrus: ToLogr and ToSlog return a *logrus.Logger whose
// formatter hands each entry, fields and all, to a logr.Logger or an
// slog.Handler instead of formatting it (its output is io.Discard). A
// formatter rather than a hook: logrus calls it once per
// entry, after its level check and its hooks and outside its lock, and
// owns the rendering, so nothing is formatted twice and every
// *logrus.Entry in rein writes to the user's sink unchanged.
//
// Levels, both ways:
//
//	logrus   logr                 slog
//	error    Error (err field)    Error (≥ Error)
//	warn     Info, V(0)           Warn
//	info     Info, V(0)           Info
//	debug    V(1)                 Debug (Debug ≤ l < Info)
//	trace    V(traceFrom) and up  below Debug (Debug-4)
//
// fatal and panic leave logrus as errors. A handler's logr logs V(1) at
// debug and V(2) and up at trace (HandlerTraceFrom, controller-runtime's
// convention: --zap-log-level=debug is V(1)); client-go's klog, whose
// components run at -v=2, logs V(1) and V(2) at debug (KlogTraceFrom).
package logbridge

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"strings"

	"github.com/go-logr/logr"
	"github.com/sirupsen/logrus"
)

// The first logr verbosity logged at trace, by source.
const (
	HandlerTraceFrom = 2
	KlogTraceFrom    = 3
)

// Logr returns a logr.Logger writing through e: V(0) at info, V(1) up to
// V(traceFrom-1) at debug, the rest at trace; Error at error with err in
// logrus's error field; key-value pairs as fields; WithName as the field
// "logger" (names joined with "/").
func Logr(e *logrus.Entry, traceFrom int) logr.Logger {
	return logr.New(&logrSink{entry: e, traceFrom: traceFrom})
}

type logrSink struct {
	entry     *logrus.Entry
	name      string
	traceFrom int
}

func (s *logrSink) Init(logr.RuntimeInfo) {}

func (s *logrSink) level(v int) logrus.Level {
	switch {
	case v <= 0:
		return logrus.InfoLevel
	case v < s.traceFrom:
		return logrus.DebugLevel
	default:
		return logrus.TraceLevel
	}
}

func (s *logrSink) Enabled(v int) bool { return s.entry.Logger.IsLevelEnabled(s.level(v)) }

func (s *logrSink) Info(v int, msg string, kv ...any) { s.with(kv).Log(s.level(v), msg) }

func (s *logrSink) Error(err error, msg string, kv ...any) {
	e := s.with(kv)
	if err != nil {
		e = e.WithError(err)
	}
	e.Error(msg)
}

func (s *logrSink) WithValues(kv ...any) logr.LogSink {
	return &logrSink{entry: s.with(kv), name: s.name, traceFrom: s.traceFrom}
}

func (s *logrSink) WithName(name string) logr.LogSink {
	if s.name != "" {
		name = s.name + "/" + name
	}
	return &logrSink{entry: s.entry.WithField("logger", name), name: name, traceFrom: s.traceFrom}
}

// with returns s's entry with the key-value pairs kv as fields. A key
// without a value gets "<no-value>" (funcr's convention); a value that is
// a logr.Marshaler is logged as what it marshals to.
func (s *logrSink) with(kv []any) *logrus.Entry {
	if len(kv) == 0 {
		return s.entry
	}
	fields := make(logrus.Fields, (len(kv)+1)/2)
	for i := 0; i < len(kv); i += 2 {
		key, ok := kv[i].(string)
		if !ok {
			key = fmt.Sprint(kv[i])
		}
		var v any = "<no-value>"
		if i+1 < len(kv) {
			v = kv[i+1]
		}
		if m, ok := v.(logr.Marshaler); ok {
			v = marshalLog(m)
		}
		fields[strings.ReplaceAll(key, " ", "_")] = v
	}
	return s.entry.WithFields(fields)
}

// marshalLog is m.MarshalLog, or what it panicked with (a nil pointer's
// method, typically).
func marshalLog(m logr.Marshaler) (v any) {
	defer func() {
		if r := recover(); r != nil {
			v = fmt.Sprintf("<panic: %v>", r)
		}
	}()
	return m.MarshalLog()
}

// Slog returns an slog.Handler writing through e: slog's levels as the
// package documentation maps them, attributes as fields (a group's
// attributes keyed "group.key"), the record's time as the entry's, and
// the call's context as the entry's.
func Slog(e *logrus.Entry) slog.Handler { return &slogHandler{entry: e} }

type slogHandler struct {
	entry  *logrus.Entry
	prefix string // the open groups, each followed by "."
}

func (h *slogHandler) Enabled(_ context.Context, l slog.Level) bool {
	return h.entry.Logger.IsLevelEnabled(fromSlog(l))
}

func (h *slogHandler) Handle(ctx context.Context, r slog.Record) error {
	e := h.entry
	if r.NumAttrs() > 0 {
		fields := make(logrus.Fields, r.NumAttrs())
		r.Attrs(func(a slog.Attr) bool {
			addAttr(fields, h.prefix, a)
			return true
		})
		e = e.WithFields(fields)
	}
	if !r.Time.IsZero() {
		e = e.WithTime(r.Time)
	}
	if ctx != nil {
		e = e.WithContext(ctx)
	}
	e.Log(fromSlog(r.Level), r.Message)
	return nil
}

func (h *slogHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	if len(attrs) == 0 {
		return h
	}
	fields := make(logrus.Fields, len(attrs))
	for _, a := range attrs {
		addAttr(fields, h.prefix, a)
	}
	return &slogHandler{entry: h.entry.WithFields(fields), prefix: h.prefix}
}

func (h *slogHandler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	return &slogHandler{entry: h.entry, prefix: h.prefix + name + "."}
}

// addAttr adds a to fields under prefix, following slog's rules: an empty
// attribute is dropped, a group's attributes are added under its key (or
// inline when it has none), an empty group is dropped.
func addAttr(fields logrus.Fields, prefix string, a slog.Attr) {
	a.Value = a.Value.Resolve()
	if a.Equal(slog.Attr{}) {
		return
	}
	if a.Value.Kind() == slog.KindGroup {
		if a.Key != "" {
			prefix += a.Key + "."
		}
		for _, g := range a.Value.Group() {
			addAttr(fields, prefix, g)
		}
		return
	}
	fields[prefix+a.Key] = a.Value.Any()
}

// fromSlog maps an slog level to logrus's.
func fromSlog(l slog.Level) logrus.Level {
	switch {
	case l >= slog.LevelError:
		return logrus.ErrorLevel
	case l >= slog.LevelWarn:
		return logrus.WarnLevel
	case l >= slog.LevelInfo:
		return logrus.InfoLevel
	case l >= slog.LevelDebug:
		return logrus.DebugLevel
	default:
		return logrus.TraceLevel
	}
}

// toSlog maps a logrus level to slog's.
func toSlog(l logrus.Level) slog.Level {
	switch l {
	case logrus.TraceLevel:
		return slog.LevelDebug - 4
	case logrus.DebugLevel:
		return slog.LevelDebug
	case logrus.InfoLevel:
		return slog.LevelInfo
	case logrus.WarnLevel:
		return slog.LevelWarn
	default:
		return slog.LevelError
	}
}

// ToLogr returns a logrus logger whose every entry goes to l: an error
// (or fatal, panic) to l.Error with the entry's error field as the error,
// warn and info to l.Info, debug to l.V(1).Info, trace to l.V(2).Info;
// the entry's other fields as key-value pairs, sorted by key. Its level
// is the most verbose l has enabled (trace when l.V(2) is).
func ToLogr(l logr.Logger) *logrus.Logger {
	level := logrus.ErrorLevel
	switch {
	case l.V(2).Enabled():
		level = logrus.TraceLevel
	case l.V(1).Enabled():
		level = logrus.DebugLevel
	case l.Enabled():
		level = logrus.InfoLevel
	}
	return forwarding(&toLogr{l}, level)
}

// ToSlog returns a logrus logger whose every entry goes to h, as a record
// of the entry's time, level (mapped as the package documentation says),
// message and fields (sorted by key), handled with the entry's context.
// Its level is the most verbose h has enabled.
func ToSlog(h slog.Handler) *logrus.Logger {
	level := logrus.ErrorLevel
	for _, l := range []logrus.Level{logrus.TraceLevel, logrus.DebugLevel, logrus.InfoLevel, logrus.WarnLevel} {
		if h.Enabled(context.Background(), toSlog(l)) {
			level = l
			break
		}
	}
	return forwarding(&toSlogHandler{h}, level)
}

func forwarding(f logrus.Formatter, level logrus.Level) *logrus.Logger {
	out := logrus.New()
	out.SetOutput(io.Discard)
	out.SetFormatter(f)
	out.SetLevel(level)
	return out
}

// Forwards reports whether f is the formatter of ToLogr or ToSlog: its
// logger's lines are formatted by the sink it forwards to.
func Forwards(f logrus.Formatter) bool {
	switch f.(type) {
	case *toLogr, *toSlogHandler:
		return true
	}
	return false
}

type toLogr struct{ l logr.Logger }

func (f *toLogr) Format(e *logrus.Entry) ([]byte, error) {
	var err error
	kv := make([]any, 0, 2*len(e.Data))
	for _, k := range slices.Sorted(maps.Keys(e.Data)) {
		v := e.Data[k]
		if k == logrus.ErrorKey && e.Level <= logrus.ErrorLevel {
			if ev, ok := v.(error); ok {
				err = ev
				continue
			}
		}
		kv = append(kv, k, v)
	}
	switch {
	case e.Level <= logrus.ErrorLevel:
		f.l.Error(err, e.Message, kv...)
	case e.Level <= logrus.InfoLevel:
		f.l.Info(e.Message, kv...)
	case e.Level == logrus.DebugLevel:
		f.l.V(1).Info(e.Message, kv...)
	default:
		f.l.V(2).Info(e.Message, kv...)
	}
	return nil, nil
}

type toSlogHandler struct{ h slog.Handler }

func (f *toSlogHandler) Format(e *logrus.Entry) ([]byte, error) {
	ctx := e.Context
	if ctx == nil {
		ctx = context.Background()
	}
	level := toSlog(e.Level)
	if !f.h.Enabled(ctx, level) {
		return nil, nil
	}
	r := slog.NewRecord(e.Time, level, e.Message, 0)
	for _, k := range slices.Sorted(maps.Keys(e.Data)) {
		r.AddAttrs(slog.Any(k, e.Data[k]))
	}
	return nil, f.h.Handle(ctx, r)
}
