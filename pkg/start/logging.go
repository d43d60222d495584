package start

import (
	"errors"
	"flag"
	"fmt"
	"strconv"
	"strings"

	"github.com/sirupsen/logrus"

	"github.com/rein-k8s/rein/internal/logbridge"
)

// The log flags. Neither is -v: klog.InitFlags defines -v on the flag set
// a program passes most often (flag.CommandLine), and --log-level takes
// the values of controller-runtime's --zap-log-level (a level name, or a
// verbosity number) besides logrus's level names.
const (
	logFormatFlag = "log-format"
	logLevelFlag  = "log-level"
)

func (o *Options) bindLogFlags(fs *flag.FlagSet) {
	fs.StringVar(&o.logFormat, logFormatFlag, o.logFormat,
		"Format of the log lines: text or json (default: the logger's own; logrus's text unless the program set one).")
	fs.StringVar(&o.logLevel, logLevelFlag, o.logLevel,
		"Most verbose level logged: error, warn, info, debug or trace; or a verbosity, as --zap-log-level takes it: 0 (info), 1 (debug: logr's V(1)), 2 or more (trace) (default: the logger's own; info unless the program set one).")
}

// logFlagErrors reports a malformed --log-format or --log-level, and a
// --log-format for a logger that forwards to a logr or slog sink, which
// formats the lines itself.
func (o *Options) logFlagErrors() []error {
	var errs []error
	if o.logFormat != "" && logFormatter(o.logFormat) == nil {
		errs = append(errs, fmt.Errorf("--%s=%q: want text or json", logFormatFlag, o.logFormat))
	} else if o.logFormat != "" && o.Logger != nil && logbridge.Forwards(o.Logger.Logger.Formatter) {
		errs = append(errs, fmt.Errorf("--%s=%s: the logger hands its lines to a logr.Logger or slog.Handler (framework.LogrusToLogr, LogrusToSlog), which formats them: leave the flag out", logFormatFlag, o.logFormat))
	}
	if _, err := parseLogLevel(o.logLevel); err != nil {
		errs = append(errs, fmt.Errorf("--%s=%q: %w", logLevelFlag, o.logLevel, err))
	}
	return errs
}

// applyLogFlags sets the formatter and the level of o.Logger's
// logrus.Logger as --log-format and --log-level say; o is valid.
func (o *Options) applyLogFlags() {
	if f := logFormatter(o.logFormat); f != nil {
		o.Logger.Logger.SetFormatter(f)
	}
	if o.logLevel != "" {
		level, _ := parseLogLevel(o.logLevel)
		o.Logger.Logger.SetLevel(level)
	}
}

// logFormatter is the formatter of a --log-format value; nil for "" and
// for a value that names none.
func logFormatter(format string) logrus.Formatter {
	switch strings.ToLower(format) {
	case "text":
		return &logrus.TextFormatter{}
	case "json":
		return &logrus.JSONFormatter{}
	}
	return nil
}

// parseLogLevel reads a --log-level value: a logrus level name, or a
// verbosity (0 info, 1 debug, 2 and up trace). "" is info.
func parseLogLevel(s string) (logrus.Level, error) {
	if s == "" {
		return logrus.InfoLevel, nil
	}
	if n, err := strconv.Atoi(s); err == nil && n >= 0 {
		switch n {
		case 0:
			return logrus.InfoLevel, nil
		case 1:
			return logrus.DebugLevel, nil
		default:
			return logrus.TraceLevel, nil
		}
	}
	level, err := logrus.ParseLevel(s)
	if err != nil {
		return 0, errors.New("want error, warn, info, debug or trace, or a verbosity: 0 (info), 1 (debug), 2 or more (trace)")
	}
	return level, nil
}
