// Package queries checks the sample's operations kit
// (samples/vmcontroller/deploy/monitoring: a Grafana dashboard and
// Prometheus alert rules) against a running rein replica: every query
// parses as PromQL (Prometheus's own parser) and names only metrics the
// replica serves, and the controller-runtime-style queries a dashboard
// starts from (reconcile rate and errors by controller, reconcile time
// p99, workqueue depth by controller, leader status) select series of a
// replica scraped while it reconciles.
//
// It is a module of its own so that rein's users do not inherit
// Prometheus's requirements (a newer Go, newer client libraries) through
// rein's go.mod; test/monitoring, in rein's module, runs it under
// `go test ./...`.
package queries

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/sirupsen/logrus"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"

	"github.com/rein-k8s/rein/internal/certs"
	"github.com/rein-k8s/rein/internal/engine"
	"github.com/rein-k8s/rein/internal/testkit"
	"github.com/rein-k8s/rein/internal/testkit/factorytest"
	"github.com/rein-k8s/rein/pkg/fence"
	"github.com/rein-k8s/rein/pkg/framework"
	"github.com/rein-k8s/rein/pkg/start"
	"github.com/rein-k8s/rein/pkg/testenv"
	"github.com/rein-k8s/rein/pkg/webhook"
)

var env *testenv.Env

func TestMain(m *testing.M) { os.Exit(testenv.Main(m, testenv.Options{}, &env)) }

// kit is the folder of the dashboard and the alert rules.
var kit = filepath.Join("..", "..", "..", "samples", "vmcontroller", "deploy", "monitoring")

// query is one PromQL expression of the kit, and where it is.
type query struct {
	where, expr string
}

// grafanaVariables are what Grafana puts in place of the dashboard's
// variables before Prometheus sees a query: an interval for the
// interval variables, the "All" value (allValue) for the others.
var grafanaVariables = strings.NewReplacer(
	"$__rate_interval", "5m", "$__interval", "1m", "$__range", "1h",
	"$job", ".*", "$controller", ".*",
)

// dashboardQueries returns the expressions of the dashboard's panels by
// panel title, and the metrics its variables read (label_values).
func dashboardQueries(t *testing.T) (byPanel map[string][]query, variables []string) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(kit, "dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Type    string `json:"type"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
		Templating struct {
			List []struct {
				Name  string `json:"name"`
				Type  string `json:"type"`
				Query any    `json:"query"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("dashboard.json: %v", err)
	}
	byPanel = map[string][]query{}
	for _, p := range dash.Panels {
		if p.Type == "row" {
			continue
		}
		if len(p.Targets) == 0 {
			t.Errorf("dashboard.json: panel %q has no query", p.Title)
		}
		for i, target := range p.Targets {
			byPanel[p.Title] = append(byPanel[p.Title], query{fmt.Sprintf("dashboard.json, panel %q, query %d", p.Title, i+1), grafanaVariables.Replace(target.Expr)})
		}
	}
	for _, v := range dash.Templating.List {
		if v.Type != "query" {
			continue
		}
		q, _ := v.Query.(map[string]any)
		text, _ := q["query"].(string)
		// label_values(<selector>, <label>): the selector is PromQL.
		inner, ok := strings.CutPrefix(text, "label_values(")
		comma := strings.LastIndex(inner, ",")
		if !ok || comma < 0 {
			t.Errorf("dashboard.json: variable %s: %q is not label_values(selector, label)", v.Name, text)
			continue
		}
		variables = append(variables, grafanaVariables.Replace(inner[:comma]))
	}
	return byPanel, variables
}

// alertQueries returns the expressions of the alert rules, after
// Prometheus's own validation of the rule file.
func alertQueries(t *testing.T) []query {
	t.Helper()
	groups, errs := rulefmt.ParseFile(filepath.Join(kit, "alerts.yaml"), false, model.UTF8Validation, parser.NewParser(parser.Options{}), slog.New(slog.DiscardHandler))
	for _, err := range errs {
		t.Errorf("alerts.yaml: %v", err)
	}
	if groups == nil {
		t.FailNow()
	}
	var out []query
	for _, g := range groups.Groups {
		for _, r := range g.Rules {
			out = append(out, query{"alerts.yaml, " + r.Alert, r.Expr})
		}
	}
	return out
}

// selectors parses q and returns its vector selectors (those of range
// vectors and subqueries included).
func selectors(t *testing.T, q query) []*parser.VectorSelector {
	t.Helper()
	expr, err := parser.NewParser(parser.Options{}).ParseExpr(q.expr)
	if err != nil {
		t.Errorf("%s: %q does not parse: %v", q.where, q.expr, err)
		return nil
	}
	var out []*parser.VectorSelector
	parser.Inspect(expr, func(node parser.Node, _ []parser.Node) error {
		if vs, ok := node.(*parser.VectorSelector); ok {
			out = append(out, vs)
		}
		return nil
	})
	if len(out) == 0 {
		t.Errorf("%s: %q selects no metric", q.where, q.expr)
	}
	return out
}

// metricName is the metric a selector names.
func metricName(vs *parser.VectorSelector) string {
	if vs.Name != "" {
		return vs.Name
	}
	for _, m := range vs.LabelMatchers {
		if m.Name == labels.MetricName && m.Type == labels.MatchEqual {
			return m.Value
		}
	}
	return ""
}

// series is what a Prometheus server would store from one scrape: one
// label set per sample, histograms and summaries spread into their
// _bucket, _sum and _count (or quantile) series.
type series struct {
	labels labels.Labels
	value  float64
}

func flatten(families map[string]*dto.MetricFamily) []series {
	var out []series
	add := func(name string, m *dto.Metric, extra map[string]string, v float64) {
		b := labels.NewScratchBuilder(len(m.GetLabel()) + 2)
		b.Add(labels.MetricName, name)
		for _, l := range m.GetLabel() {
			b.Add(l.GetName(), l.GetValue())
		}
		for k, val := range extra {
			b.Add(k, val)
		}
		b.Sort()
		out = append(out, series{b.Labels(), v})
	}
	for name, fam := range families {
		for _, m := range fam.GetMetric() {
			switch fam.GetType() {
			case dto.MetricType_HISTOGRAM:
				h := m.GetHistogram()
				for _, b := range h.GetBucket() {
					add(name+"_bucket", m, map[string]string{"le": fmt.Sprint(b.GetUpperBound())}, float64(b.GetCumulativeCount()))
				}
				add(name+"_bucket", m, map[string]string{"le": "+Inf"}, float64(h.GetSampleCount()))
				add(name+"_sum", m, nil, h.GetSampleSum())
				add(name+"_count", m, nil, float64(h.GetSampleCount()))
			case dto.MetricType_SUMMARY:
				s := m.GetSummary()
				for _, q := range s.GetQuantile() {
					add(name, m, map[string]string{"quantile": fmt.Sprint(q.GetQuantile())}, q.GetValue())
				}
				add(name+"_sum", m, nil, s.GetSampleSum())
				add(name+"_count", m, nil, float64(s.GetSampleCount()))
			default:
				add(name, m, nil, m.GetCounter().GetValue()+m.GetGauge().GetValue()+m.GetUntyped().GetValue())
			}
		}
	}
	return out
}

// selected returns the scraped series vs selects.
func selected(vs *parser.VectorSelector, all []series) []series {
	var out []series
	for _, s := range all {
		if s.labels.Get(labels.MetricName) != metricName(vs) {
			continue
		}
		match := true
		for _, m := range vs.LabelMatchers {
			match = match && m.Matches(s.labels.Get(m.Name))
		}
		if match {
			out = append(out, s)
		}
	}
	return out
}

// replica runs a replica of every kind of group rein has, so that every
// metric it can export is there to scrape: a single-leader group whose
// ConfigMap handler blocks on key <ns>/slow until release is closed, a
// sharded group, a webhook server with a certificate from a folder. It
// returns the replica, its namespace, and a channel that gets a key when
// its handler starts on it.
func replica(t *testing.T, release <-chan struct{}) (*start.Replica, string, <-chan string) {
	t.Helper()
	admin := testkit.Admin(t, env)
	ns := testkit.NewNamespace(t, admin, "ops-")
	scheme := factorytest.Scheme(t, clientgoscheme.AddToScheme)
	newFactory := func() *framework.Factory {
		f, err := framework.NewFactory(env.Config(), scheme, framework.Options{Namespace: ns})
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	leading := newFactory()
	cms, err := engine.OpsOf(leading).Controller(factorytest.ConfigMaps)
	if err != nil {
		t.Fatal(err)
	}
	started := make(chan string, 64)
	cms.AddHandler(t.Context(), "see", func(ctx context.Context, key string, obj runtime.Object) (runtime.Object, error) {
		started <- key
		if key == ns+"/slow" {
			select {
			case <-release:
			case <-ctx.Done():
			}
		}
		return nil, nil
	})
	sharded := newFactory()
	secrets, err := engine.OpsOf(sharded).Controller(factorytest.Secrets)
	if err != nil {
		t.Fatal(err)
	}
	secrets.AddHandler(t.Context(), "noop", func(context.Context, string, runtime.Object) (runtime.Object, error) { return nil, nil })

	o := start.NewOptions()
	o.Config = env.Config()
	o.LeaseNamespace = ns
	o.IdentityBase = "ops"
	o.LeaseDuration, o.RenewDeadline, o.RetryPeriod = 2*time.Second, 1500*time.Millisecond, 300*time.Millisecond
	o.MetricsBindAddress, o.HealthProbeBindAddress = "127.0.0.1:0", "127.0.0.1:0"
	o.Logger = logrus.NewEntry(logrus.New())
	o.Webhook = webhookServer(t)
	r, err := start.New(o,
		start.Group{LeaseName: "ops", Factories: []start.Starter{leading}},
		start.Group{LeaseName: "ops-shards", Shards: 2, Factories: []start.Starter{sharded}},
	)
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("the replica's Run: %v", err)
		}
	})
	return r, ns, started
}

func webhookServer(t *testing.T) *webhook.Server {
	t.Helper()
	ca, err := certs.NewCA("ops test", time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	certPEM, keyPEM, err := ca.Issue([]string{"127.0.0.1"}, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for name, data := range map[string][]byte{"tls.crt": certPEM, "tls.key": keyPEM} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	s, err := webhook.NewServer(webhook.Options{Addr: "127.0.0.1:0", CertDir: dir, Logger: logrus.NewEntry(logrus.New())})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// endedHold is a hold whose term is over.
type endedHold struct{}

func (endedHold) Token() fence.Token { return fence.Token{} }
func (endedHold) Deadline() (time.Time, error) {
	return time.Time{}, &fence.Error{Lease: "ops/ended", Reason: "the test's hold ended", SinceRenew: -1}
}

func scrape(t *testing.T, r *start.Replica) (map[string]*dto.MetricFamily, []series) {
	t.Helper()
	resp, err := http.Get("http://" + r.MetricsAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	raw, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("/metrics: %d, %v", resp.StatusCode, err)
	}
	body := string(raw)
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("/metrics does not parse: %v", err)
	}
	return families, flatten(families)
}

// TestOperationsKit: a replica scraped while a reconcile runs. Every
// query of the dashboard and the alert rules parses and names only
// metrics it serves; the controller-runtime-style panels select series
// of it, with values that say what happened.
func TestOperationsKit(t *testing.T) {
	release := make(chan struct{})
	defer func() {
		select {
		case <-release:
		default:
			close(release)
		}
	}()
	r, ns, started := replica(t, release)
	admin := testkit.Admin(t, env)
	testkit.Eventually(t, 20*time.Second, 20*time.Millisecond, "the replica to lead and hold the shards", func() bool {
		_, all := scrape(t, r)
		leads, shards := false, 0.0
		for _, s := range all {
			switch s.labels.Get(labels.MetricName) {
			case "leader_election_master_status":
				leads = s.value == 1
			case "rein_shard_held":
				shards = s.value
			}
		}
		return leads && shards == 2
	})
	// One reconcile done, one running while /metrics is scraped.
	for _, name := range []string{"quick", "slow"} {
		if _, err := admin.CoreV1().ConfigMaps(ns).Create(t.Context(), &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	for seen := map[string]bool{}; !seen[ns+"/quick"] || !seen[ns+"/slow"]; {
		select {
		case key := <-started:
			seen[key] = true
		case <-time.After(20 * time.Second):
			t.Fatalf("the handler started on %v only", seen)
		}
	}
	// A write under an ended hold: the fence refuses it and counts it.
	req, err := http.NewRequestWithContext(fence.WithHold(t.Context(), endedHold{}), http.MethodPost, "http://127.0.0.1:1/", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fence.Transport(nil).RoundTrip(req); !errors.Is(err, fence.ErrFenced) {
		t.Fatalf("a write under an ended hold: %v, want a refusal", err)
	}
	// controller_runtime_reconcile_total has the quick reconcile once the
	// worker counted it; the slow one runs until release.
	var families map[string]*dto.MetricFamily
	var all []series
	testkit.Eventually(t, 10*time.Second, 20*time.Millisecond, "the quick reconcile counted", func() bool {
		families, all = scrape(t, r)
		for _, s := range all {
			if s.labels.Get(labels.MetricName) == "controller_runtime_reconcile_total" && s.labels.Get("result") == "success" && s.labels.Get("controller") == "configmaps" && s.value > 0 {
				return true
			}
		}
		return false
	})
	close(release)
	exported := map[string]bool{}
	for _, s := range all {
		exported[s.labels.Get(labels.MetricName)] = true
	}
	t.Logf("the replica serves %d metric families", len(families))

	byPanel, variables := dashboardQueries(t)
	var everything []query
	for _, title := range slices.Sorted(maps.Keys(byPanel)) {
		everything = append(everything, byPanel[title]...)
	}
	for i, v := range variables {
		everything = append(everything, query{fmt.Sprintf("dashboard.json, variable %d", i+1), v})
	}
	everything = append(everything, alertQueries(t)...)
	if len(everything) < 20 {
		t.Fatalf("%d queries in the kit: the files were not read as meant", len(everything))
	}
	for _, q := range everything {
		for _, vs := range selectors(t, q) {
			if name := metricName(vs); !exported[name] {
				t.Errorf("%s: %q names %q, which the replica does not serve", q.where, q.expr, name)
			}
		}
	}

	// The controller-runtime-style panels select data of this replica,
	// and what it says is true.
	type expectation struct {
		panel string
		// check is given the series every selector of the panel's first
		// query selected.
		check func([]series) string
	}
	anyValue := func(ok func(series) bool, what string) func([]series) string {
		return func(got []series) string {
			for _, s := range got {
				if ok(s) {
					return ""
				}
			}
			return what
		}
	}
	configmaps := func(s series) bool { return s.labels.Get("controller") == "configmaps" }
	for _, e := range []expectation{
		{"Reconciles by controller and result", anyValue(func(s series) bool {
			return configmaps(s) && s.labels.Get("result") == "success" && s.value >= 1
		}, "no successful reconcile of configmaps")},
		{"Reconcile errors by controller", anyValue(func(s series) bool { return configmaps(s) && s.value == 0 }, "no error series of configmaps at 0")},
		{"Reconcile time p99 by controller", anyValue(func(s series) bool {
			return configmaps(s) && s.labels.Get("le") == "+Inf" && s.value >= 1
		}, "no reconcile time observed for configmaps")},
		{"Workers busy by controller", anyValue(func(s series) bool {
			return configmaps(s) && s.labels.Get(labels.MetricName) == "controller_runtime_active_workers" && s.value >= 1
		}, "no busy worker of configmaps while the slow reconcile ran")},
		{"Workqueue depth by controller and priority", anyValue(func(s series) bool {
			return configmaps(s) && s.labels.Get("priority") != ""
		}, "no depth series of configmaps by priority")},
		{"Leader", anyValue(func(s series) bool { return s.labels.Get("name") == "ops" && s.value == 1 }, "leader_election_master_status{name=ops} is not 1")},
	} {
		queries := byPanel[e.panel]
		if len(queries) == 0 {
			t.Errorf("dashboard.json has no panel %q", e.panel)
			continue
		}
		var got []series
		for _, vs := range selectors(t, queries[0]) {
			sel := selected(vs, all)
			if len(sel) == 0 {
				t.Errorf("%s: %s selects no series of the replica", queries[0].where, vs)
			}
			got = append(got, sel...)
		}
		if msg := e.check(got); msg != "" {
			t.Errorf("%s: %s", queries[0].where, msg)
		}
	}
	// Each alert's selectors find their series too (it could fire).
	for _, q := range alertQueries(t) {
		for _, vs := range selectors(t, q) {
			if len(selected(vs, all)) == 0 {
				t.Errorf("%s: %s selects no series of the replica", q.where, vs)
			}
		}
	}
}
