package framework_test

import (
	"errors"
	"log/slog"
	"os"

	"github.com/sirupsen/logrus"

	"github.com/rein-k8s/rein/pkg/framework"
)

// Log to an slog.Handler instead of logrus's output: give the factories
// and the replica (start.Options.Logger) the same logger, and every line,
// rein's and the handlers', reaches the handler with its fields.
func ExampleLogrusToSlog() {
	withoutTime := func(_ []string, a slog.Attr) slog.Attr {
		if a.Key == slog.TimeKey {
			return slog.Attr{}
		}
		return a
	}
	h := slog.NewTextHandler(os.Stdout, &slog.HandlerOptions{Level: slog.LevelDebug, ReplaceAttr: withoutTime})
	logger := logrus.NewEntry(framework.LogrusToSlog(h))
	_ = framework.Options{Logger: logger}

	// What the engine writes when a handler fails, and a handler's debug line.
	log := logger.WithFields(logrus.Fields{"controller": "ships", "handler": "berth", "key": "fleet/endeavour"})
	log.WithError(errors.New("harbor closed")).Error("handler failed; retrying with backoff")
	log.WithField("crew", 80).Debug("asking for a berth")
	log.Trace("not shown: the handler's level is Debug")
	// Output:
	// level=ERROR msg="handler failed; retrying with backoff" controller=ships error="harbor closed" handler=berth key=fleet/endeavour
	// level=DEBUG msg="asking for a berth" controller=ships crew=80 handler=berth key=fleet/endeavour
}
