package start_test

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/sirupsen/logrus"

	"github.com/rein-k8s/rein/internal/testkit"
	"github.com/rein-k8s/rein/pkg/framework"
	"github.com/rein-k8s/rein/pkg/start"
)

// TestLogFlags: --log-format and --log-level set the formatter and the
// level of the replica's logger (without them it is left as the program
// made it); a bad value is refused naming the flag and the values it
// takes; --log-format is refused for a logger that hands its lines to a
// logr or slog sink, which formats them.
func TestLogFlags(t *testing.T) {
	newReplica := func(o start.Options, logger *logrus.Logger, args ...string) error {
		t.Helper()
		parseFlags(t, &o, args...)
		o.Logger = logrus.NewEntry(logger)
		o.MetricsBindAddress, o.HealthProbeBindAddress = "0", "0"
		_, err := start.New(o, start.Group{LeaseName: testLease, Factories: []start.Starter{newFactory(t, "default")}})
		return err
	}
	for _, c := range []struct {
		args   []string
		format string // the formatter's type
		level  logrus.Level
	}{
		{nil, "start_test.messageOnly", logrus.InfoLevel},
		{[]string{"--log-format=json", "--log-level=debug"}, "*logrus.JSONFormatter", logrus.DebugLevel},
		{[]string{"--log-format", "text", "--log-level", "2"}, "*logrus.TextFormatter", logrus.TraceLevel},
		{[]string{"--log-level=1"}, "start_test.messageOnly", logrus.DebugLevel},
		{[]string{"--log-level=0"}, "start_test.messageOnly", logrus.InfoLevel},
		{[]string{"--log-level=WARN"}, "start_test.messageOnly", logrus.WarnLevel},
		{[]string{"--log-level=error"}, "start_test.messageOnly", logrus.ErrorLevel},
	} {
		logger := logrus.New()
		out := &testkit.SyncBuffer{}
		logger.SetOutput(out)
		logger.SetFormatter(messageOnly{})
		if err := newReplica(testOptions(t, "default"), logger, c.args...); err != nil {
			t.Fatalf("%v: %v", c.args, err)
		}
		if got := fmt.Sprintf("%T", logger.Formatter); got != c.format {
			t.Errorf("%v: formatter %s, want %s", c.args, got, c.format)
		}
		if logger.GetLevel() != c.level {
			t.Errorf("%v: level %v, want %v", c.args, logger.GetLevel(), c.level)
		}
		if c.format == "*logrus.JSONFormatter" {
			lines := 0
			for line := range strings.Lines(out.String()) {
				var m map[string]any
				if err := json.Unmarshal([]byte(line), &m); err != nil {
					t.Errorf("--log-format=json: not a JSON line: %q", line)
				}
				lines++
			}
			if lines == 0 || logLine(out.String(), "lease namespace ") == nil {
				t.Errorf("--log-format=json: no JSON line saying the lease namespace:\n%s", out)
			}
		}
	}

	err := newReplica(testOptions(t, "default"), logrus.New(), "--log-format=xml", "--log-level=loud")
	for _, want := range []string{
		`--log-format="xml": want text or json`,
		`--log-level="loud": want error, warn, info, debug or trace, or a verbosity: 0 (info), 1 (debug), 2 or more (trace)`,
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("the error does not say %q:\n%v", want, err)
		}
	}
	err = newReplica(testOptions(t, "default"), logrus.New(), "--log-level=-1")
	if want := `--log-level="-1": want error, warn`; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("the error does not say %q:\n%v", want, err)
	}

	// A logger that hands its lines to an slog.Handler: --log-level still
	// applies, --log-format has nothing to format.
	out := &testkit.SyncBuffer{}
	forwarding := framework.LogrusToSlog(slog.NewJSONHandler(out, &slog.HandlerOptions{Level: slog.LevelDebug}))
	err = newReplica(testOptions(t, "default"), forwarding, "--log-format=json")
	if want := "--log-format=json: the logger hands its lines to a logr.Logger or slog.Handler"; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("--log-format with a forwarding logger: %v, want an error saying %q", err, want)
	}
	if err := newReplica(testOptions(t, "default"), forwarding, "--log-level=info"); err != nil {
		t.Fatal(err)
	}
	if forwarding.GetLevel() != logrus.InfoLevel {
		t.Errorf("level %v, want info", forwarding.GetLevel())
	}
	if line := logLine(out.String(), "lease namespace "); line == nil || line["level"] != "INFO" || line["identity"] == nil {
		t.Errorf("the slog handler got no lease namespace line with the replica's fields:\n%s", out)
	}
}
