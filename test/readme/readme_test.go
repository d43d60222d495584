package readme

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
)

// TestReadme runs the README's quickstart in an empty folder: the
// scaffolded project passes its own tests, and its replica makes a
// Guestbook Ready, serves its metrics and probes where the README says,
// and releases its Lease on SIGTERM.
func TestReadme(t *testing.T) {
	if testing.Short() {
		t.Skip("scaffolds a project, tests and runs it")
	}
	blocks := readPage(t, "README.md")
	if !slices.ContainsFunc(blocks, func(b block) bool { return b.kind == "replica" }) {
		t.Fatal("the README starts no replica")
	}
	runPage(t, blocks, t.TempDir(), pageChecks{ready: scaffoldReady, stopped: leaseReleased("guestbook")})
}

// scaffoldReady: the scaffolded handler makes a Guestbook Ready, /metrics
// and the probes answer, and the replica leads its Lease in the namespace
// of the kubeconfig's context.
func scaffoldReady(t *testing.T, r *pageRun) {
	guestbooks := dynamic.NewForConfigOrDie(r.env.Config()).Resource(schema.GroupVersionResource{Group: "webapp.example.com", Version: "v1", Resource: "guestbooks"}).Namespace("default")
	if _, err := guestbooks.Create(r.ctx, &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "webapp.example.com/v1", "kind": "Guestbook", "metadata": map[string]any{"name": "first"}, "spec": map[string]any{"foo": "bar"},
	}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for {
		got, err := guestbooks.Get(r.ctx, "first", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		conditions, _, _ := unstructured.NestedSlice(got.Object, "status", "conditions")
		if slices.ContainsFunc(conditions, func(c any) bool {
			m, ok := c.(map[string]any)
			return ok && m["type"] == "Ready" && m["status"] == "True"
		}) {
			break
		}
		select {
		case <-r.ctx.Done():
			t.Fatalf("the handler did not make the Guestbook Ready: %v", r.ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
	metrics := httpGet(t, "http://127.0.0.1:8080/metrics")
	for _, want := range []string{
		`controller_runtime_reconcile_total{controller="guestbooks.webapp.example.com",result="success"}`,
		`leader_election_master_status{name="guestbook"} 1`,
		`rein_leader_election_transitions_total{event="acquired",lease="default/guestbook"} 1`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics has no %s", want)
		}
	}
	for _, path := range []string{"/healthz", "/readyz"} {
		if body := httpGet(t, "http://127.0.0.1:8081"+path); strings.TrimSpace(body) != "ok" {
			t.Errorf("%s: %q, want ok", path, body)
		}
	}
}

// byHandReady (docs/guide/00-by-hand.md): the CRD's validation, the
// handler, /metrics with no registry wired by hand, the probes, and the
// lease namespace the replica chose and said.
func byHandReady(t *testing.T, r *pageRun) {
	ships := shipsV1(r)
	if _, err := ships.Create(r.ctx, ship("bounty", 0), metav1.CreateOptions{}); !apierrors.IsInvalid(err) {
		t.Fatalf("a Ship with crew 0: %v; want the CRD's schema (Minimum=1) to refuse it", err)
	}
	shipSeen(t, r, "endeavour")
	metrics := httpGet(t, "http://127.0.0.1:8080/metrics")
	for _, want := range []string{
		`rein_handler_executions_total{controller="ships.fleet.example.com",handler="see",result="success"}`,
		`controller_runtime_reconcile_total{controller="ships.fleet.example.com",result="success"}`,
		`workqueue_adds_total{controller="ships.fleet.example.com",name="ships.fleet.example.com"}`,
		`rein_cache_objects{group="fleet.example.com",kind="Ship",version="v1"} 1`,
		`leader_election_master_status{name="shipyard"} 1`,
		`rein_leader_election_transitions_total{event="acquired",lease="default/shipyard"} 1`,
		`go_goroutines`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics has no %s", want)
		}
	}
	for _, path := range []string{"/healthz", "/readyz"} {
		if body := httpGet(t, "http://127.0.0.1:8081"+path); strings.TrimSpace(body) != "ok" {
			t.Errorf("%s: %q, want ok", path, body)
		}
	}
	if log := r.replica.log.String(); !strings.Contains(log, "lease namespace") || !strings.Contains(log, "lease=default/shipyard") {
		t.Errorf("the replica did not say which lease namespace it chose (want \"default\": the kubeconfig's context has none)")
	}
}

// leaseReleased: after SIGTERM the Lease default/name has no holder.
func leaseReleased(name string) func(t *testing.T, r *pageRun) {
	return func(t *testing.T, r *pageRun) {
		cs := kubernetes.NewForConfigOrDie(r.env.Config())
		lease, err := cs.CoordinationV1().Leases("default").Get(r.ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatalf("the Lease the replica held: %v", err)
		}
		if holder := holderOf(lease); holder != "" {
			t.Fatalf("after SIGTERM the Lease is still held by %q", holder)
		}
	}
}

func holderOf(l *coordinationv1.Lease) string {
	if l.Spec.HolderIdentity == nil {
		return ""
	}
	return *l.Spec.HolderIdentity
}

func shipsV1(r *pageRun) dynamic.ResourceInterface {
	return dynamic.NewForConfigOrDie(r.env.Config()).Resource(schema.GroupVersionResource{Group: "fleet.example.com", Version: "v1", Resource: "ships"}).Namespace("default")
}

func ship(name string, crew int64) *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "fleet.example.com/v1", "kind": "Ship",
		"metadata": map[string]any{"name": name}, "spec": map[string]any{"crew": crew},
	}}
}

// shipSeen creates a v1 Ship called name and waits until the guide module's
// handler marks it seen.
func shipSeen(t *testing.T, r *pageRun, name string) {
	t.Helper()
	ships := shipsV1(r)
	if _, err := ships.Create(r.ctx, ship(name, 80), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for {
		got, err := ships.Get(r.ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if seen, _, _ := unstructured.NestedBool(got.Object, "status", "seen"); seen {
			return
		}
		select {
		case <-r.ctx.Done():
			t.Fatalf("the handler did not mark the Ship %s as seen: %v", name, r.ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

var link = regexp.MustCompile(`\]\(([^)#\s]*)(#[^)\s]*)?\)`)

// TestDocs checks what needs no apiserver: every page's markers, the
// README's length, the guide's index, and every relative link.
func TestDocs(t *testing.T) {
	root := repoRoot()
	pages := append([]string{"README.md"}, guidePages(t)...)
	for _, page := range pages {
		readPage(t, page)
	}

	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(readme), "\n"); n > 250 {
		t.Errorf("README.md has %d lines: keep it to 250 and move the rest into docs/guide", n)
	}
	if !strings.Contains(string(readme), "(docs/guide/README.md)") {
		t.Errorf("README.md does not link the guide's index, docs/guide/README.md")
	}
	index, err := os.ReadFile(filepath.Join(root, "docs", "guide", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, page := range guidePages(t) {
		if name := filepath.Base(page); name != "README.md" && !strings.Contains(string(index), "("+name+")") {
			t.Errorf("docs/guide/README.md does not list %s", name)
		}
	}

	md, _ := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	for _, page := range append(pages, relAll(root, md)...) {
		text, err := os.ReadFile(filepath.Join(root, page))
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range link.FindAllStringSubmatch(string(text), -1) {
			target, anchor := m[1], strings.TrimPrefix(m[2], "#")
			if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			path := filepath.Join(root, filepath.Dir(page), target)
			if target == "" {
				path = filepath.Join(root, page)
			}
			if _, err := os.Stat(path); err != nil {
				t.Errorf("%s: the link %s leads nowhere: %v", page, target, err)
				continue
			}
			if anchor != "" && strings.HasSuffix(path, ".md") && !hasHeading(t, path, anchor) {
				t.Errorf("%s: the link %s#%s names no heading of %s", page, target, anchor, target)
			}
		}
	}
}

// hasHeading says whether the markdown file at path has a heading whose
// GitHub anchor is anchor.
func hasHeading(t *testing.T, path, anchor string) bool {
	text, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(text), "\n") {
		title, ok := strings.CutPrefix(strings.TrimLeft(line, "#"), " ")
		if !ok || !strings.HasPrefix(line, "#") {
			continue
		}
		slug := strings.Map(func(r rune) rune {
			switch {
			case r == ' ':
				return '-'
			case r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r):
				return unicode.ToLower(r)
			}
			return -1
		}, strings.TrimSpace(title))
		if slug == anchor {
			return true
		}
	}
	return false
}

func relAll(root string, paths []string) []string {
	var out []string
	for _, p := range paths {
		rel, err := filepath.Rel(root, p)
		if err != nil {
			panic(fmt.Sprint(err))
		}
		out = append(out, filepath.ToSlash(rel))
	}
	return out
}
