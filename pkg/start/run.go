package start

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/sirupsen/logrus"

	"github.com/rein-k8s/rein/pkg/framework"
)

// Exit codes of a replica run by Run.
const (
	// ExitOK: stopped on request; handlers drained, leases released.
	ExitOK = 0
	// ExitLeaseLost: a lease was lost; workers were stopped at once.
	ExitLeaseLost = 1
	// ExitFailed: the replica could not run (a registration mistake).
	ExitFailed = 2
	// ExitForced: a second signal ended the process without draining.
	ExitForced = 3
)

// Run runs a replica of the groups (one, usually), in the background, and
// returns at once: nil, or the reason the options or groups cannot run
// (every mistake New finds). The process then ends
// from Run's goroutine, the one exit path of rein, and only after the
// lease is released:
//
//   - SIGTERM or SIGINT (or ctx ending): stop taking keys, drain running
//     handlers within DrainGrace, release the lease, exit ExitOK. A second
//     signal exits ExitForced at once.
//   - lease lost: stop workers at once, exit ExitLeaseLost (unless
//     ReturnToStandby).
//
// With Options.PrintRBAC (--print-rbac), Run prints the RBAC the groups
// need instead, reaching no cluster, and the process exits ExitOK.
//
// main registers handlers, calls Run, and blocks with `select {}`. Run also
// routes client-go's klog output into the replica's logrus logger.
func Run(ctx context.Context, opts Options, groups ...Group) error {
	if opts.PrintRBAC {
		out, err := printRBAC(opts, groups)
		if err != nil {
			return err
		}
		if _, err := os.Stdout.WriteString(out); err != nil {
			return fmt.Errorf("start: --print-rbac: %w", err)
		}
		go os.Exit(ExitOK)
		return nil
	}
	r, err := New(opts, groups...)
	if err != nil {
		return err
	}
	framework.RouteKlogToLogrus(r.log.Logger)
	go func() { os.Exit(runUntilSignalled(ctx, r, os.Exit)) }()
	return nil
}

// runUntilSignalled runs r until it ends and returns the exit code; the
// first SIGTERM/SIGINT stops it gracefully, a second calls exit(ExitForced).
func runUntilSignalled(ctx context.Context, r *Replica, exit func(int)) int {
	signals := make(chan os.Signal, 2)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(signals)
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	finished := make(chan struct{})
	defer close(finished)
	go func() {
		select {
		case sig := <-signals:
			r.log.WithField("signal", sig.String()).Info("shutting down; a second signal exits at once")
			stop()
		case <-finished:
			return
		}
		select {
		case sig := <-signals:
			r.log.WithField("signal", sig.String()).Warn("second signal: exiting without draining")
			exit(ExitForced)
		case <-finished:
		}
	}()
	err := r.Run(runCtx)
	return exitCode(r.log, err)
}

func exitCode(log *logrus.Entry, err error) int {
	switch {
	case err == nil:
		log.Info("stopped")
		return ExitOK
	case errors.Is(err, ErrLeaseLost):
		log.WithError(err).Error("exiting: lease lost")
		return ExitLeaseLost
	default:
		log.WithError(err).Error("exiting: cannot run")
		return ExitFailed
	}
}
