package fence_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rein-k8s/rein/internal/procmetrics"
	"github.com/rein-k8s/rein/pkg/fence"
)

// endedHold is a hold of lease that no longer allows writes.
type endedHold struct{ lease string }

func (endedHold) Token() fence.Token { return fence.Token{} }
func (h endedHold) Deadline() (time.Time, error) {
	return time.Time{}, &fence.Error{Lease: h.lease, Reason: "ended", SinceRenew: -1}
}

// refusals is rein_fence_refusals_total by lease, as /metrics shows it.
func refusals(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, fam := range families {
		if fam.GetName() != "rein_fence_refusals_total" {
			continue
		}
		for _, m := range fam.GetMetric() {
			out[m.GetLabel()[0].GetValue()] = m.GetCounter().GetValue()
		}
	}
	return out
}

// TestRefusalsAreCounted: every write Transport refuses counts once under
// its hold's Lease ("" with no hold); writes and reads that pass do not.
func TestRefusalsAreCounted(t *testing.T) {
	reg := prometheus.NewRegistry()
	if err := procmetrics.Register(reg); err != nil {
		t.Fatal(err)
	}
	// The counter is the process's: other tests of this package refuse
	// writes too, so count from here.
	before := refusals(t, reg)
	rt := fence.Transport(&recorder{})
	ended := fence.WithHold(t.Context(), endedHold{"ns/gone"})
	for range 2 {
		if _, err := send(t, rt, ended, http.MethodPatch); err == nil {
			t.Fatal("a write under an ended hold passed")
		}
	}
	if _, err := send(t, rt, ended, http.MethodGet); err != nil {
		t.Fatalf("a read under an ended hold: %v", err)
	}
	if _, err := send(t, rt, t.Context(), http.MethodDelete); err == nil {
		t.Fatal("a write with no hold passed")
	}
	if _, err := send(t, rt, fence.Unfenced(t.Context()), http.MethodDelete); err != nil {
		t.Fatalf("an unfenced write: %v", err)
	}
	after := refusals(t, reg)
	if got := after["ns/gone"] - before["ns/gone"]; got != 2 {
		t.Errorf("refusals under ns/gone: %v, want 2", got)
	}
	if got := after[""] - before[""]; got != 1 {
		t.Errorf("refusals with no hold: %v, want 1", got)
	}
}
