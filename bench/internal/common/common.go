// Package common holds what the benchmark controllers share: their flags,
// the mark they write, the children they declare (children.go), and the
// log lines the driver reads.
package common

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
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
	Write                                            string
	CPUProfile                                       string
	CPUProfileFor                                    time.Duration
	// CPUProfileOnSignal starts --cpuprofile at the first SIGUSR1
	// rather than at the start, and ends it at the second: the driver
	// profiles one phase of a run (the partition scenario's steady
	// changes).
	CPUProfileOnSignal bool
	// HeapProfile, when set, is where the "synced" line writes a heap
	// profile (after a GC): what the full cache holds, by allocation site.
	HeapProfile string
	// Workload is what the controller does: "marks" (mark every ConfigMap),
	// "pass" (call the handler on every ConfigMap, which waits Delay and
	// writes nothing; see Changes) or "children" (a generating handler on
	// Deployments; see children.go).
	Workload string
	// Parents is how many Deployments the children workload expects: the
	// "handled-all" line comes once each has been through the handlers.
	Parents int
	// Delay is how long the marks handler waits before it writes: a
	// simulated call to a slow external system.
	Delay time.Duration
	// Shards runs rein sharded active-active (rein only; 0: one leader).
	Shards int
	// Partition, "i/n", makes a rein process work only the keys whose
	// shard (of PartitionShards) is i modulo n, with no protocol at all: the ceiling a
	// sharding protocol is measured against (give each process its own
	// --lease-name, so that each leads at once).
	Partition string
	// UIDRange, "i/n", makes the client-go writer list and watch only
	// the objects whose UID hash is in the i-th of n equal ranges (the
	// apiserver's shard selector): a fixed partition with no protocol,
	// the floor of a partitioned replica's cost.
	UIDRange string
	// Cache is what the cache keeps of each ConfigMap: CacheDefault,
	// CacheDropData or CacheMetadata (marks workload; not every program
	// has every setting).
	Cache string
	// Objects, when above zero, makes the marks workload log
	// "handled-all" once that many ConfigMaps have been through the
	// handler (a new leader's pass over every key).
	Objects int
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
	fs.StringVar(&f.Write, "write", "patch", "how the handler writes the annotation: patch (JSON merge patch) or update (the cached object with the annotation, resourceVersion precondition)")
	fs.StringVar(&f.CPUProfile, "cpuprofile", "", "write a CPU profile of the first --cpuprofile-for of the process to this file")
	fs.DurationVar(&f.CPUProfileFor, "cpuprofile-for", 8*time.Second, "how long --cpuprofile records")
	fs.BoolVar(&f.CPUProfileOnSignal, "cpuprofile-on-usr1", false, "start --cpuprofile at the first SIGUSR1 rather than at the start, and end it at the second (or after --cpuprofile-for)")
	fs.StringVar(&f.HeapProfile, "heapprofile", "", "write a heap profile to this file when the caches have synced (the \"synced\" line)")
	fs.StringVar(&f.Workload, "workload", WorkloadMarks, "marks (mark every ConfigMap of --namespace), pass (rein and controller-runtime only: every handler call waits --delay and writes nothing, and logs the changes of "+ChangeAnnotation+" it sees) or children (declare a ConfigMap, a Secret and a ServiceAccount per Deployment of --namespace)")
	fs.DurationVar(&f.Delay, "delay", 0, "marks workload: how long the handler waits before it writes (a simulated external call); pass workload: how long every handler call waits")
	fs.IntVar(&f.Shards, "shards", 0, "rein only: run sharded active-active with this many shards (0: one leader)")
	fs.StringVar(&f.Partition, "partition", "", "rein only: i/n, work only the keys whose shard of 60 is i modulo n, a fixed split with no protocol (the ceiling for --shards); give each process its own --lease-name")
	fs.StringVar(&f.UIDRange, "uid-range", "", "clientgo only: i/n, list and watch only the ConfigMaps whose UID hash is in the i-th of n equal ranges (a server-side shard selector, feature gate ShardedListAndWatch), a fixed partition with no protocol")
	fs.IntVar(&f.Parents, "parents", 0, "children workload: the number of Deployments; \"handled-all\" is logged once each went through the handlers")
	fs.StringVar(&f.Cache, "cache", CacheDefault, "marks workload: what the cache keeps of each ConfigMap: default (all of it), drop-data (rein: a cache transform drops data and binaryData), metadata (metadata only: rein's NewMetadataController, controller-runtime's OnlyMetadata)")
	fs.IntVar(&f.Objects, "objects", 0, "marks workload: log \"handled-all\" once this many ConfigMaps went through the handler (0: never)")
}

// PartitionShards is the shard count of --partition, and of the driver's
// sharded runs: 60 splits evenly over 1, 3 and 5 processes.
const PartitionShards = 60

// ParseFraction parses the value s of flag (--partition, --uid-range):
// "i/n" with 0 <= i < n.
func ParseFraction(flag, s string) (i, n int, err error) {
	if _, err := fmt.Sscanf(s, "%d/%d", &i, &n); err != nil || n < 1 || i < 0 || i >= n || fmt.Sprintf("%d/%d", i, n) != s {
		return 0, 0, fmt.Errorf("--%s=%q: want i/n with 0 <= i < n, e.g. 2/5", flag, s)
	}
	return i, n, nil
}

// The cache settings (--cache).
const (
	CacheDefault  = "default"
	CacheDropData = "drop-data"
	CacheMetadata = "metadata"
)

// CacheOnly exits when --cache is not one of the settings the program
// has: a run must never measure another setting than it names.
func (f *Flags) CacheOnly(settings ...string) {
	if !slices.Contains(settings, f.Cache) {
		fmt.Fprintf(os.Stderr, "--cache=%q: this program has %s\n", f.Cache, strings.Join(settings, ", "))
		os.Exit(2)
	}
}

// The workloads.
const (
	WorkloadMarks    = "marks"
	WorkloadPass     = "pass"
	WorkloadChildren = "children"
)

// Config parses fs and returns the rest.Config with the user agent set.
func (f *Flags) Config() *rest.Config {
	if f.Kubeconfig == "" || f.Namespace == "" {
		fmt.Fprintln(os.Stderr, "--kubeconfig and --namespace are required")
		os.Exit(2)
	}
	if f.Write != "patch" && f.Write != "update" {
		fmt.Fprintf(os.Stderr, "--write=%q: want patch or update\n", f.Write)
		os.Exit(2)
	}
	if f.Workload != WorkloadMarks && f.Workload != WorkloadPass && f.Workload != WorkloadChildren {
		fmt.Fprintf(os.Stderr, "--workload=%q: want %s, %s or %s\n", f.Workload, WorkloadMarks, WorkloadPass, WorkloadChildren)
		os.Exit(2)
	}
	if f.Cache != CacheDefault && f.Cache != CacheDropData && f.Cache != CacheMetadata {
		fmt.Fprintf(os.Stderr, "--cache=%q: want %s, %s or %s\n", f.Cache, CacheDefault, CacheDropData, CacheMetadata)
		os.Exit(2)
	}
	if f.Cache != CacheDefault && (f.Write == "update" || f.Workload != WorkloadMarks) {
		// An update of an object the cache keeps only in part would write
		// the dropped fields away (metadata-only has no body to send).
		fmt.Fprintf(os.Stderr, "--cache=%s: only with --workload %s --write patch\n", f.Cache, WorkloadMarks)
		os.Exit(2)
	}
	if f.Workload == WorkloadChildren && f.Parents <= 0 {
		fmt.Fprintln(os.Stderr, "--workload=children needs --parents")
		os.Exit(2)
	}
	if f.LeaseNamespace == "" {
		f.LeaseNamespace = f.Namespace
	}
	if f.UserAgent == "" {
		f.UserAgent = fmt.Sprintf("bench/%d", os.Getpid())
	}
	switch {
	case f.CPUProfile != "" && f.CPUProfileOnSignal:
		usr1 := make(chan os.Signal, 2)
		signal.Notify(usr1, syscall.SIGUSR1)
		go func() { // ends after the second signal: one profile
			<-usr1
			stop := startCPUProfile(f.CPUProfile, f.CPUProfileFor)
			<-usr1
			signal.Stop(usr1)
			stop()
		}()
	case f.CPUProfile != "":
		startCPUProfile(f.CPUProfile, f.CPUProfileFor)
	}
	heapProfile = f.HeapProfile
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

// Wait waits d (the simulated external call), or until ctx ends.
func Wait(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Marked returns a copy of obj's annotations with the mark set, for an update.
func Marked(annotations map[string]string, mark string) map[string]string {
	out := make(map[string]string, len(annotations)+1)
	for k, v := range annotations {
		out[k] = v
	}
	out[Annotation] = mark
	return out
}

// logLine prints the log line "<word> <now>" the driver reads.
func logLine(word string) { fmt.Printf("%s %s\n", word, time.Now().Format(time.RFC3339Nano)) }

// Synced logs "synced": the program's caches hold the initial list.
func Synced() {
	logLine("synced")
	if heapProfile != "" {
		writeHeapProfile(heapProfile)
	}
}

// heapProfile is --heapprofile, for Synced.
var heapProfile string

// writeHeapProfile writes the heap as it is after a GC into path.
func writeHeapProfile(path string) {
	runtime.GC()
	out, err := os.Create(path)
	if err == nil {
		err = pprof.WriteHeapProfile(out)
		if cerr := out.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "heapprofile:", err)
	}
}

// AwaitSynced polls hasSynced every 10 ms until it holds, then logs
// "synced"; false when ctx ended first. (client-go's WaitForCacheSync
// polls every 100 ms: too coarse to time a sync by.)
func AwaitSynced(ctx context.Context, hasSynced func() bool) bool {
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for !hasSynced() {
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
		}
	}
	Synced()
	return true
}

// Leadership logs "leading" once and "first-reconcile" on the first handler
// call after it.
type Leadership struct {
	leading atomic.Bool
	first   sync.Once
}

// Leading logs that this process started leading.
func (l *Leadership) Leading() {
	logLine("leading")
	l.leading.Store(true)
}

// Reconciling is called at the start of every handler call.
func (l *Leadership) Reconciling() {
	if !l.leading.Load() {
		return
	}
	l.first.Do(func() { logLine("first-reconcile") })
}

// startCPUProfile records a CPU profile into path for d, from now on, or
// until stop is called (the benchmark processes are killed rather than
// stopped: the profile ends at a time of its own).
func startCPUProfile(path string, d time.Duration) (stop func()) {
	out, err := os.Create(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, "cpuprofile:", err)
		os.Exit(2)
	}
	if err := pprof.StartCPUProfile(out); err != nil {
		fmt.Fprintln(os.Stderr, "cpuprofile:", err)
		os.Exit(2)
	}
	var once sync.Once
	stop = func() {
		once.Do(func() {
			pprof.StopCPUProfile()
			_ = out.Close()
		})
	}
	time.AfterFunc(d, stop)
	return stop
}
