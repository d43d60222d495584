package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/rein-k8s/rein/samples/vmcontroller/hypervisor"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// shutdownTimeout bounds the wait for in-flight requests at shutdown.
const shutdownTimeout = 10 * time.Second

// run runs the command until ctx is done and returns its exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("hypervisor", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:8090", "address to listen on (port 0: any free port)")
	dataDir := fs.String("data-dir", "", "directory holding vms.json (required)")
	latency := fs.Duration("latency", 0, "latency added to every VM API call")
	transition := fs.Duration("transition", 2*time.Second, "duration of Provisioning, Starting and Stopping")
	errorRate := fs.Float64("error-rate", 0, "fraction (0..1) of VM API calls failing with 503 Injected")
	seed := fs.Int64("seed", 0, "seed of the error injection")
	refuse := fs.String("refuse-images", "", "comma-separated image prefixes refused at create")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2 // the flag package has printed the error, naming the flag
	}
	usageErr := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "hypervisor: "+format+"\n", a...)
		fs.Usage()
		return 2
	}
	switch {
	case fs.NArg() > 0:
		return usageErr("unexpected arguments: %q", fs.Args())
	case *dataDir == "":
		return usageErr("--data-dir is required")
	case *listen == "":
		return usageErr("--listen must not be empty")
	case *latency < 0:
		return usageErr("--latency must not be negative, got %v", *latency)
	case *transition < 0:
		return usageErr("--transition must not be negative, got %v", *transition)
	case math.IsNaN(*errorRate) || *errorRate < 0 || *errorRate > 1:
		return usageErr("--error-rate must be within [0, 1], got %v", *errorRate)
	}
	var refused []string
	for _, p := range strings.Split(*refuse, ",") {
		if p = strings.TrimSpace(p); p != "" {
			refused = append(refused, p)
		}
	}

	logger := logrus.New()
	logger.SetOutput(stderr)
	logger.SetFormatter(&logrus.TextFormatter{FullTimestamp: true, TimestampFormat: time.RFC3339Nano})
	log := logrus.NewEntry(logger)

	hv, err := hypervisor.NewServer(hypervisor.Config{
		DataDir:       *dataDir,
		Latency:       *latency,
		Transition:    *transition,
		ErrorRate:     *errorRate,
		Seed:          *seed,
		RefusedImages: refused,
		Logger:        log,
	})
	if err != nil {
		log.WithError(err).Error("starting the hypervisor")
		return 1
	}
	defer hv.Close()

	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		log.WithError(err).Error("listening")
		return 1
	}
	srv := &http.Server{Handler: hv.Handler(), ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	log.WithFields(logrus.Fields{
		"addr": ln.Addr().String(), "dataDir": *dataDir, "transition": *transition,
		"latency": *latency, "errorRate": *errorRate, "seed": *seed, "refusedImages": refused,
	}).Info("serving")
	fmt.Fprintf(stdout, "listening on %s\n", ln.Addr())

	select {
	case err := <-served:
		log.WithError(err).Error("serving")
		return 1
	case <-ctx.Done():
	}
	log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		log.WithError(err).Warn("shutdown did not finish in time; closing connections")
		_ = srv.Close()
	}
	if err := hv.Close(); err != nil {
		log.WithError(err).Error("closing the hypervisor")
		return 1
	}
	log.Info("stopped")
	return 0
}
