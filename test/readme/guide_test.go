package readme

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// checks holds what each guide page promises of the replica it starts;
// a page with a replica and no entry is held to being ready and exiting
// 0 on SIGTERM.
var checks = map[string]pageChecks{
	byHandPage:                    {ready: byHandReady, stopped: leaseReleased("shipyard")},
	"docs/guide/04-sharding.md":   {ready: shardingReady},
	"docs/guide/06-webhooks.md":   {before: webhooksBefore, ready: webhooksReady},
	"docs/guide/08-production.md": {ready: productionReady},
}

// TestGuide runs every page of docs/guide, each in a copy of the
// guide's module (docs/guide/00-by-hand.md), as a reader who built it would.
func TestGuide(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a module and runs it")
	}
	for _, page := range guidePages(t) {
		t.Run(filepath.Base(page), func(t *testing.T) {
			blocks := readPage(t, page)
			if len(blocks) == 0 {
				t.Skip("no code blocks")
			}
			if page == byHandPage {
				// Its blocks before the replica built the module; the
				// replica runs in a copy of it.
				i := slices.IndexFunc(blocks, func(b block) bool { return b.kind == "replica" })
				if i < 0 {
					t.Fatalf("%s starts no replica", page)
				}
				blocks = blocks[i:]
			}
			runPage(t, blocks, guideModuleCopy(t), checks[page])
		})
	}
}

// shardingReady: the one replica holds every shard (it says so on
// /readyz) and its handler runs.
func shardingReady(t *testing.T, r *pageRun) {
	var body string
	for !strings.Contains(body, "holds 32 of 32 shards") {
		if r.ctx.Err() != nil {
			t.Fatalf("the replica never held all 32 shards; /readyz: %s", body)
		}
		time.Sleep(100 * time.Millisecond)
		body = httpGet(t, "http://127.0.0.1:8081/readyz")
	}
	shipSeen(t, r, "endeavour")
}

// productionReady: the handler runs, and /metrics, on the address the
// page gives, shows the lease in the namespace the page names.
func productionReady(t *testing.T, r *pageRun) {
	shipSeen(t, r, "endeavour")
	metrics := httpGet(t, "http://127.0.0.1:8080/metrics")
	for _, want := range []string{
		`leader_election_master_status{name="shipyard"} 1`,
		`rein_leader_election_transitions_total{event="acquired",lease="kube-system/shipyard"} 1`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics has no %s", want)
		}
	}
}
