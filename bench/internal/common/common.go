// Package common holds what the three benchmark controllers share: their
// flags, the mark they write, and the two log lines the driver reads.
package common

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// Annotation is what every controller writes.
const Annotation = "bench.rein.dev/marked"

// Flags are the flags every controller takes.
type Flags struct {
	Kubeconfig, Namespace, LeaseName, LeaseNamespace string
	LeaseDuration, RenewDeadline, RetryPeriod        time.Duration
	Workers                                          int
	UserAgent, Mark, Identity                        string
}

// Bind binds the shared flags to fs.
func (f *Flags) Bind(fs *flag.FlagSet) {
	fs.StringVar(&f.Kubeconfig, "kubeconfig", "", "kubeconfig file")
	fs.StringVar(&f.Namespace, "namespace", "", "namespace whose ConfigMaps are marked")
	fs.StringVar(&f.LeaseName, "lease-name", "bench", "Lease name")
	fs.StringVar(&f.LeaseNamespace, "lease-namespace", "", "Lease namespace (default --namespace)")
	fs.DurationVar(&f.LeaseDuration, "lease-duration", 15*time.Second, "lease duration")
	fs.DurationVar(&f.RenewDeadline, "renew-deadline", 10*time.Second, "renew deadline")
	fs.DurationVar(&f.RetryPeriod, "retry-period", 2*time.Second, "retry period")
	fs.IntVar(&f.Workers, "workers", 5, "workers")
	fs.StringVar(&f.UserAgent, "user-agent", "", "user agent of every request (default bench/<pid>)")
	fs.StringVar(&f.Mark, "mark", "1", "value of the annotation the handler writes")
	fs.StringVar(&f.Identity, "identity", "", "replica name (POD_NAME; for wrangler, the hostname it sets in its own UTS namespace)")
}

// Config parses fs and returns the rest.Config with the user agent set.
func (f *Flags) Config() *rest.Config {
	if f.Kubeconfig == "" || f.Namespace == "" {
		fmt.Fprintln(os.Stderr, "--kubeconfig and --namespace are required")
		os.Exit(2)
	}
	if f.LeaseNamespace == "" {
		f.LeaseNamespace = f.Namespace
	}
	if f.UserAgent == "" {
		f.UserAgent = fmt.Sprintf("bench/%d", os.Getpid())
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", f.Kubeconfig)
	if err != nil {
		fmt.Fprintln(os.Stderr, "kubeconfig:", err)
		os.Exit(2)
	}
	cfg.UserAgent = f.UserAgent
	// The same client-side limits for every framework: none to speak of.
	cfg.QPS, cfg.Burst = 10000, 10000
	return cfg
}

// Patch is the merge patch that marks an object with mark.
func Patch(mark string) []byte {
	b, _ := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": map[string]string{Annotation: mark}}})
	return b
}

// Leadership logs "leading" once and "first-reconcile" on the first handler
// call after it.
type Leadership struct {
	leading atomic.Bool
	first   sync.Once
}

// Leading logs that this process started leading.
func (l *Leadership) Leading() {
	fmt.Printf("leading %s\n", time.Now().Format(time.RFC3339Nano))
	l.leading.Store(true)
}

// Reconciling is called at the start of every handler call.
func (l *Leadership) Reconciling() {
	if !l.leading.Load() {
		return
	}
	l.first.Do(func() { fmt.Printf("first-reconcile %s\n", time.Now().Format(time.RFC3339Nano)) })
}
