package e2e

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/rein-k8s/rein/internal/testkit/audit"
)

// BenchmarkElection measures failover with the default timings (lease 15s,
// renew 10s, retry 2s), three replicas and 5000 cached ConfigMaps that
// every new leader re-marks (so it has work at once):
//
//   - idle election load: requests/s of the leader and of each standby,
//     from the apiserver's audit log;
//   - SIGTERM → successor's acquireTime, and → its first write;
//   - SIGKILL → successor's acquireTime, and → its first write;
//   - winning (acquireTime) → first reconcile (the handler's first call).
//
// Each failover is repeated rounds times (default 5; REIN_BENCH_ROUNDS);
// medians, minima and maxima are reported. Run it with -benchtime=1x.
func BenchmarkElection(b *testing.B) {
	rounds := 5
	if v := os.Getenv("REIN_BENCH_ROUNDS"); v != "" {
		_, _ = fmt.Sscan(v, &rounds)
	}
	for range b.N {
		benchElection(b, 5000, rounds)
	}
}

type samples map[string][]time.Duration

func (s samples) add(name string, d time.Duration) { s[name] = append(s[name], d) }

func benchElection(b *testing.B, objects, rounds int) {
	c := newClusterWith(b, objects)
	defaults := []string{"--leader-elect-lease-duration=15s", "--leader-elect-renew-deadline=10s",
		"--leader-elect-retry-period=2s", "--mark=writer", "--workers=5"}
	opts := replicaOptions{args: defaults}
	serial := 0
	spawn := func() *replica {
		serial++
		return c.start(fmt.Sprintf("r%d", serial), opts)
	}
	for range 3 {
		spawn()
	}
	leader, _, next := c.awaitLeader(0, time.Minute)
	c.awaitMarkedBy(leader, 5*time.Minute)

	// Idle: nothing changes; count every request of every replica.
	idleFrom := time.Now()
	time.Sleep(30 * time.Second) // the measurement window itself
	idleTo := time.Now()
	perAgent := c.requestsBetween(idleFrom, idleTo)
	window := idleTo.Sub(idleFrom).Seconds()
	var standbyRates []float64
	for _, r := range c.replicas {
		if !r.running() {
			continue
		}
		rate := float64(perAgent[r.writer()]) / window
		role := "standby"
		if r == leader {
			role = "leader"
		} else {
			standbyRates = append(standbyRates, rate)
		}
		b.Logf("idle %s %s: %d requests in %.0fs = %.2f/s", role, r.name, perAgent[r.writer()], window, rate)
		if r == leader {
			b.ReportMetric(rate, "leader-req/s")
		}
	}
	b.ReportMetric(slices.Max(standbyRates), "standby-req/s")

	got := samples{}
	for _, kill := range []bool{false, true} {
		how := "SIGTERM"
		if kill {
			how = "SIGKILL"
		}
		for round := range rounds {
			sent := time.Now()
			if kill {
				leader.kill()
			} else if err := leader.signal(syscall.SIGTERM); err != nil {
				b.Fatal(err)
			}
			successor, _, n := c.awaitLeader(next, time.Minute)
			next = n
			if !kill {
				leader.awaitExit(b, time.Minute)
			}
			c.awaitMarkedBy(successor, 5*time.Minute)
			acquired := c.acquireTime()
			firstWrite := c.firstWriteBy(successor.writer(), sent)
			firstReconcile := successor.firstReconcile()
			got.add(how+"→lead", acquired.Sub(sent))
			got.add(how+"→first-write", firstWrite.Sub(sent))
			got.add("win→first-reconcile", firstReconcile.Sub(acquired))
			b.Logf("%s round %d: lead %v, first write %v, win→first reconcile %v", how, round+1,
				acquired.Sub(sent).Round(time.Millisecond), firstWrite.Sub(sent).Round(time.Millisecond),
				firstReconcile.Sub(acquired).Round(time.Microsecond))
			leader = successor
			fresh := spawn() // keep three replicas
			fresh.awaitLog(b, "caches synced", time.Minute)
		}
	}
	for _, name := range []string{"SIGTERM→lead", "SIGTERM→first-write", "SIGKILL→lead", "SIGKILL→first-write", "win→first-reconcile"} {
		d := got[name]
		slices.Sort(d)
		med := d[len(d)/2]
		if len(d)%2 == 0 {
			med = (d[len(d)/2-1] + d[len(d)/2]) / 2
		}
		// Printed, not logged: the testing package cuts long benchmark logs.
		fmt.Printf("election: %-22s median %10v  min %10v  max %10v  (n=%d)\n", name, med.Round(time.Microsecond), d[0].Round(time.Microsecond), d[len(d)-1].Round(time.Microsecond), len(d))
		b.ReportMetric(float64(med.Microseconds())/1000, name+"-ms")
	}
}

// writer is the user agent the replica's requests carry.
func (r *replica) writer() string {
	prefix := "rein-e2e/"
	if r.program == "clientgo" {
		prefix = "rein-e2e/clientgo-"
	}
	return fmt.Sprintf("%s%s/%d", prefix, r.podName, r.cmd.Process.Pid)
}

// awaitLog waits until the replica's log has a line containing text.
func (r *replica) awaitLog(t testing.TB, text string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		data, _ := os.ReadFile(r.logPath)
		if strings.Contains(string(data), text) {
			return
		}
		if time.Now().After(deadline) || !r.running() {
			t.Fatalf("%s never logged %q", r.name, text)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// firstReconcile is when the replica's handler first ran (from its log).
func (r *replica) firstReconcile() time.Time {
	data, _ := os.ReadFile(r.logPath)
	for line := range strings.SplitSeq(string(data), "\n") {
		if !strings.Contains(line, "first reconcile") {
			continue
		}
		if _, after, ok := strings.Cut(line, "at=\""); ok {
			if at, err := time.Parse(time.RFC3339Nano, strings.SplitN(after, "\"", 2)[0]); err == nil {
				return at
			}
		}
	}
	return time.Time{}
}

// awaitMarkedBy waits until every ConfigMap carries r's writer annotation.
func (c *cluster) awaitMarkedBy(r *replica, timeout time.Duration) {
	c.t.Helper()
	writer := r.writer()
	c.awaitAll(timeout, "marked by "+r.name, func(cm *corev1.ConfigMap) bool {
		return cm.Annotations["e2e.rein.dev/writer"] == writer
	})
}

func (c *cluster) acquireTime() time.Time {
	c.t.Helper()
	l, err := c.admin.CoordinationV1().Leases(c.ns).Get(context.Background(), leaseName, metav1.GetOptions{})
	if err != nil || l.Spec.AcquireTime == nil {
		c.t.Fatalf("lease acquireTime: %v", err)
	}
	return l.Spec.AcquireTime.Time
}

// scanAudit calls fn for every audit event of this cluster's namespace.
func (c *cluster) scanAudit(fn func(ev *audit.Event)) {
	c.t.Helper()
	if _, err := audit.Read(env, 0, func(ev *audit.Event) {
		if ev.ObjectRef.Namespace == c.ns {
			fn(ev)
		}
	}); err != nil {
		c.t.Fatal(err)
	}
}

// firstWriteBy is when the apiserver received the first successful
// ConfigMap write of writer after since.
func (c *cluster) firstWriteBy(writer string, since time.Time) time.Time {
	var first time.Time
	c.scanAudit(func(ev *audit.Event) {
		if ev.UserAgent == writer && ev.ObjectRef.Resource == "configmaps" && ev.Verb == "patch" &&
			ev.ResponseStatus.Code < 300 && ev.RequestReceived.After(since) &&
			(first.IsZero() || ev.RequestReceived.Before(first)) {
			first = ev.RequestReceived
		}
	})
	if first.IsZero() {
		c.t.Fatalf("no write by %s in the audit log", writer)
	}
	return first
}

// requestsBetween counts requests per user agent received in [from, to].
func (c *cluster) requestsBetween(from, to time.Time) map[string]int {
	counts := map[string]int{}
	c.scanAudit(func(ev *audit.Event) {
		if !ev.RequestReceived.Before(from) && !ev.RequestReceived.After(to) {
			counts[ev.UserAgent]++
		}
	})
	return counts
}
