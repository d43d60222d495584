package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/rein-k8s/rein/internal/testbin"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr, testbin.Exec)
	stop()
	os.Exit(code)
}

const usage = `usage: rein-testbin [--dir DIR] [--force] [--module-only]

Builds kube-apiserver and etcd from the Go modules this version of rein pins
and prints the folder that holds them (for REIN_TESTBIN); progress goes to
standard error. Without --dir the folder is the one rein's testenv looks in
by itself:
  %s

Flags:
`

// run is the command: it returns the exit code, 2 for bad usage.
func run(ctx context.Context, args []string, stdout, stderr io.Writer, runner testbin.Runner) int {
	m, err := testbin.Pinned()
	if err != nil {
		fmt.Fprintln(stderr, "rein-testbin:", strings.TrimPrefix(err.Error(), "testbin: "))
		return 1
	}
	defaultDir, defaultErr := m.DefaultDir()

	fs := flag.NewFlagSet("rein-testbin", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("dir", "", "build into `DIR` (the module goes into DIR/"+testbin.ModuleDir+") instead of the default folder")
	force := fs.Bool("force", false, "rebuild even when the binaries are up to date")
	moduleOnly := fs.Bool("module-only", false, "write the module into DIR/"+testbin.ModuleDir+" and print that folder, without building")
	fs.Usage = func() {
		shown := defaultDir
		if defaultErr != nil {
			shown = "(none: " + defaultErr.Error() + ")"
		}
		fmt.Fprintf(stderr, usage, shown)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2 // the flag package has said what is wrong
	}
	if err := validate(fs, *dir, *force, *moduleOnly); err != nil {
		fmt.Fprintf(stderr, "rein-testbin: %v\n", err)
		fmt.Fprintln(stderr, "run rein-testbin -h for its usage")
		return 2
	}
	if *dir == "" {
		if defaultErr != nil {
			fmt.Fprintf(stderr, "rein-testbin: no default folder: %v; pass --dir\n", defaultErr)
			return 2
		}
		*dir = defaultDir
	}

	if *moduleOnly {
		moduleDir, err := filepath.Abs(filepath.Join(*dir, testbin.ModuleDir))
		if err == nil {
			err = m.Write(moduleDir)
		}
		if err != nil {
			fmt.Fprintln(stderr, "rein-testbin:", strings.TrimPrefix(err.Error(), "testbin: "))
			return 1
		}
		fmt.Fprintf(stderr, "rein-testbin: wrote the module of kube-apiserver %s and etcd %s\n", m.KubernetesVersion(), m.EtcdVersion())
		fmt.Fprintln(stdout, moduleDir)
		return 0
	}

	res, err := m.Build(ctx, testbin.BuildOptions{Dir: *dir, Force: *force, Runner: runner, Log: stderr})
	if err != nil {
		if ctx.Err() != nil {
			fmt.Fprintln(stderr, "rein-testbin: interrupted; the next run builds again")
		}
		fmt.Fprintln(stderr, "rein-testbin:", strings.TrimPrefix(err.Error(), "testbin: "))
		return 1
	}
	fmt.Fprintln(stdout, res.Dir)
	return 0
}

// validate checks the flags against each other and the file system.
func validate(fs *flag.FlagSet, dir string, force, moduleOnly bool) error {
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q: rein-testbin takes only flags", fs.Arg(0))
	}
	dirSet := false
	fs.Visit(func(f *flag.Flag) { dirSet = dirSet || f.Name == "dir" })
	if dirSet && dir == "" {
		return errors.New("--dir is empty: name a folder, or leave the flag out for the default one")
	}
	if force && moduleOnly {
		return errors.New("--force and --module-only exclude each other: --module-only builds nothing")
	}
	if dir != "" {
		if info, err := os.Stat(dir); err == nil && !info.IsDir() {
			return fmt.Errorf("--dir %s is a file, not a folder", dir)
		}
	}
	return nil
}
