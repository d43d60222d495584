package leader_test

import (
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/rein-k8s/rein/pkg/leader"
)

func validConfig() leader.Config {
	return leader.Config{Namespace: "ns", Name: "rein", Identity: "pod-0_0123456789abcdef"}
}

func TestValidateNamesTheFlag(t *testing.T) {
	for _, tc := range []struct {
		name   string
		modify func(*leader.Config)
		want   []string // substrings of the error; none: valid
	}{
		{"defaults", func(*leader.Config) {}, nil},
		{"explicit defaults", func(c *leader.Config) {
			c.LeaseDuration, c.RenewDeadline, c.RetryPeriod = 15*time.Second, 10*time.Second, 2*time.Second
		}, nil},
		{"short but consistent", func(c *leader.Config) {
			c.LeaseDuration, c.RenewDeadline, c.RetryPeriod = 2*time.Second, 1500*time.Millisecond, 300*time.Millisecond
		}, nil},
		{"lease duration equal to renew deadline", func(c *leader.Config) { c.LeaseDuration = 10 * time.Second },
			[]string{"--leader-elect-lease-duration (10s) must be greater than --leader-elect-renew-deadline (10s)"}},
		{"lease duration below the default renew deadline", func(c *leader.Config) { c.LeaseDuration = 5 * time.Second },
			[]string{"--leader-elect-lease-duration (5s)", "--leader-elect-renew-deadline (10s)"}},
		{"renew deadline too close to retry period", func(c *leader.Config) { c.RetryPeriod = 9 * time.Second },
			[]string{"--leader-elect-renew-deadline (10s) must be greater than 1.2 × --leader-elect-retry-period", "10.8s"}},
		{"negative retry period", func(c *leader.Config) { c.RetryPeriod = -time.Second },
			[]string{"--leader-elect-retry-period is -1s: it must be greater than zero"}},
		{"negative lease duration", func(c *leader.Config) { c.LeaseDuration = -time.Second },
			[]string{"--leader-elect-lease-duration is -1s"}},
		{"negative renew deadline", func(c *leader.Config) { c.RenewDeadline = -time.Second },
			[]string{"--leader-elect-renew-deadline is -1s"}},
		{"no name", func(c *leader.Config) { c.Name = "" }, []string{"--leader-elect-resource-name: the lease name is empty"}},
		{"bad name", func(c *leader.Config) { c.Name = "Rein_Lease" }, []string{"--leader-elect-resource-name", `"Rein_Lease" is not valid`}},
		{"no namespace", func(c *leader.Config) { c.Namespace = "" }, []string{"--leader-elect-resource-namespace: the lease namespace is empty"}},
		{"no identity", func(c *leader.Config) { c.Identity = " " }, []string{"identity is empty", "NewIdentity"}},
		{"every problem at once", func(c *leader.Config) { *c = leader.Config{RetryPeriod: -1} },
			[]string{"resource-name", "resource-namespace", "identity", "--leader-elect-retry-period"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := validConfig()
			tc.modify(&cfg)
			err := cfg.Validate()
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("valid config refused: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("invalid config accepted")
			}
			for _, want := range tc.want {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not contain %q", err, want)
				}
			}
		})
	}
}

func TestNewChecksConfigAndClient(t *testing.T) {
	cfg := validConfig()
	if _, err := leader.New(cfg); err == nil || !strings.Contains(err.Error(), "Client is nil") {
		t.Fatalf("New without a client: %v", err)
	}
	cfg.Client = fake.NewClientset().CoordinationV1()
	cfg.LeaseDuration = time.Second
	if _, err := leader.New(cfg); err == nil || !strings.Contains(err.Error(), "--leader-elect-lease-duration") {
		t.Fatalf("New with a bad lease duration: %v", err)
	}
}

func TestNewIdentity(t *testing.T) {
	format := regexp.MustCompile(`^pod-7_[0-9a-f]{16}$`)
	seen := map[string]bool{}
	for range 1000 {
		id, err := leader.NewIdentity("pod-7")
		if err != nil {
			t.Fatal(err)
		}
		if !format.MatchString(id) {
			t.Fatalf("identity %q does not match %s", id, format)
		}
		if seen[id] {
			t.Fatalf("identity %q returned twice", id)
		}
		seen[id] = true
	}
	if _, err := leader.NewIdentity("  "); err == nil || !strings.Contains(err.Error(), "POD_NAME") {
		t.Fatalf("empty base: %v", err)
	}
}

func TestMetricsAreLabelledByLease(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	newElector := func(name string) error {
		cfg := validConfig()
		cfg.Name = name
		cfg.Client = fake.NewClientset().CoordinationV1()
		cfg.Registerer = reg
		_, err := leader.New(cfg)
		return err
	}
	if err := newElector("a"); err != nil {
		t.Fatal(err)
	}
	if err := newElector("b"); err != nil {
		t.Fatalf("a second lease on the same registry: %v", err)
	}
	err := newElector("a")
	if err == nil || !strings.Contains(err.Error(), "ns/a") || !strings.Contains(err.Error(), "own registry") {
		t.Fatalf("the same lease twice on one registry: %v", err)
	}
	// leader_election_master_status names a Lease by its name alone, as
	// client-go's does: the same name in another namespace is refused
	// with the reason, and leaves nothing half registered.
	cfg := validConfig()
	cfg.Namespace, cfg.Name = "other", "a"
	cfg.Client = fake.NewClientset().CoordinationV1()
	cfg.Registerer = reg
	if _, err := leader.New(cfg); err == nil || !strings.Contains(err.Error(), "other/a") || !strings.Contains(err.Error(), "name alone") {
		t.Fatalf("a Lease of the same name in another namespace on one registry: %v", err)
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	series := map[string]int{}
	leases := map[string]bool{}
	names := map[string]bool{}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			series[f.GetName()]++
			for _, l := range m.GetLabel() {
				switch l.GetName() {
				case "lease":
					leases[l.GetValue()] = true
				case "name":
					names[l.GetValue()] = true
				}
			}
		}
	}
	want := map[string]int{
		"leader_election_master_status":               2,
		"rein_leader_election_transitions_total":      2 * 4, // acquired, lost, released, stopped
		"rein_leader_election_renew_duration_seconds": 2,
		"rein_leader_election_renew_failures_total":   2,
	}
	for name, n := range want {
		if series[name] != n {
			t.Errorf("%s: %d series, want %d (all: %v)", name, series[name], n, series)
		}
	}
	if !leases["ns/a"] || !leases["ns/b"] || len(leases) != 2 {
		t.Errorf("lease labels %v, want ns/a and ns/b", leases)
	}
	if !names["a"] || !names["b"] || len(names) != 2 {
		t.Errorf("leader_election_master_status name labels %v, want a and b (the Leases' names, as client-go's)", names)
	}
	// A nil registerer is fine.
	cfg = validConfig()
	cfg.Client = fake.NewClientset().CoordinationV1()
	if _, err := leader.New(cfg); err != nil {
		t.Fatal(err)
	}
}
