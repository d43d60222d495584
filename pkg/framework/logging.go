package framework

import (
	"log/slog"

	"github.com/go-logr/logr"
	"github.com/sirupsen/logrus"

	"github.com/rein-k8s/rein/internal/logbridge"
)

// LogrusToLogr returns a logrus logger that formats nothing itself: every
// line goes to l, with its fields as key-value pairs. Give it to
// Options.Logger and start.Options.Logger (logrus.NewEntry) and rein's
// logs, the handlers' (logrus, logr and slog alike) and client-go's go to
// l: error to l.Error (the error field as the error), warn and info to
// l.Info, debug to l.V(1), trace to l.V(2). Its level is the most verbose
// l has enabled.
func LogrusToLogr(l logr.Logger) *logrus.Logger { return logbridge.ToLogr(l) }

// LogrusToSlog is LogrusToLogr for an slog.Handler: error, warn, info and
// debug to slog's levels of the same name, trace to LevelDebug-4; each
// line's time and context are the record's.
func LogrusToSlog(h slog.Handler) *logrus.Logger { return logbridge.ToSlog(h) }
