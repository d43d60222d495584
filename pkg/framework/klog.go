package framework

import (
	"fmt"
	"strings"

	"github.com/go-logr/logr"
	"github.com/sirupsen/logrus"
	"k8s.io/klog/v2"
)

// RouteKlogToLogrus sends everything client-go logs through klog to
// logger, so that a replica writes one log format. klog's verbosity V(n)
// maps to logrus Debug (n ≤ 2) and Trace (n > 2). klog is process-global:
// call this once, from main or pkg/start.
func RouteKlogToLogrus(logger *logrus.Logger) {
	klog.SetLogger(logr.New(&logrusSink{log: logrus.NewEntry(logger).WithField("source", "client-go")}))
}

type logrusSink struct {
	log  *logrus.Entry
	name string
}

func (s *logrusSink) Init(logr.RuntimeInfo) {}

func (s *logrusSink) Enabled(level int) bool { return s.log.Logger.IsLevelEnabled(levelOf(level)) }

func levelOf(v int) logrus.Level {
	switch {
	case v <= 0:
		return logrus.InfoLevel
	case v <= 2:
		return logrus.DebugLevel
	default:
		return logrus.TraceLevel
	}
}

func (s *logrusSink) Info(level int, msg string, kv ...any) {
	s.entry(kv).Log(levelOf(level), s.prefix(msg))
}

func (s *logrusSink) Error(err error, msg string, kv ...any) {
	s.entry(kv).WithError(err).Error(s.prefix(msg))
}

func (s *logrusSink) WithValues(kv ...any) logr.LogSink {
	return &logrusSink{log: s.entry(kv), name: s.name}
}

func (s *logrusSink) WithName(name string) logr.LogSink {
	if s.name != "" {
		name = s.name + "/" + name
	}
	return &logrusSink{log: s.log, name: name}
}

func (s *logrusSink) prefix(msg string) string {
	if s.name == "" {
		return msg
	}
	return s.name + ": " + msg
}

func (s *logrusSink) entry(kv []any) *logrus.Entry {
	if len(kv) == 0 {
		return s.log
	}
	fields := make(logrus.Fields, len(kv)/2)
	for i := 0; i+1 < len(kv); i += 2 {
		key := fmt.Sprint(kv[i])
		fields[strings.ReplaceAll(key, " ", "_")] = kv[i+1]
	}
	return s.log.WithFields(fields)
}
