package framework

import (
	"github.com/sirupsen/logrus"
	"k8s.io/klog/v2"

	"github.com/rein-k8s/rein/internal/logbridge"
)

// RouteKlogToLogrus sends everything client-go logs through klog to
// logger, with the field source=client-go, so that a replica writes one
// log format. klog's verbosity V(n) maps to logrus Debug (n ≤ 2) and
// Trace (n > 2); a klog logger's name is the field "logger". klog is
// process-global: call this once, from main or pkg/start.
func RouteKlogToLogrus(logger *logrus.Logger) {
	klog.SetLogger(logbridge.Logr(logrus.NewEntry(logger).WithField("source", "client-go"), logbridge.KlogTraceFrom))
}
