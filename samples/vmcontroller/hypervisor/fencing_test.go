package hypervisor_test

import (
	"context"
	"net/http"
	"testing"

	"github.com/rein-k8s/rein/pkg/fence"
	"github.com/rein-k8s/rein/samples/vmcontroller/hypervisor"
)

// TestFencingTokens: per VM, a mutating call with a token lower than the
// highest accepted (same lease) is refused with 409 StaleFencingToken and
// not applied; equal or higher tokens, tokens of another lease and calls
// without a token pass; the stats count each.
func TestFencingTokens(t *testing.T) {
	e := start(t, hypervisor.Config{Transition: fast})
	// rein's sender side: fence.Transport puts the context's token in the header.
	fenced := hypervisor.NewClient(e.hs.URL, &http.Client{Transport: fence.Transport(e.hs.Client().Transport)})
	term := func(n int64) context.Context {
		return fence.WithHold(ctx(t), fence.Fixed(fence.Token{Namespace: "vms", Lease: "vmcontroller", Term: n}))
	}

	vm, err := fenced.Create(term(5), req("uid-1"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fenced.SetPower(term(4), vm.ID, hypervisor.PowerOff); err == nil {
		t.Fatal("a call with an older term's token was applied")
	} else {
		wantCode(t, err, http.StatusConflict, hypervisor.CodeStaleToken)
	}
	if got := e.waitState(vm.ID, hypervisor.StateRunning); got.Power != hypervisor.PowerOn {
		t.Fatalf("the refused call changed the VM: %+v", got)
	}
	if err := fenced.Delete(term(3), vm.ID); err == nil {
		t.Fatal("a delete with an older term's token was applied")
	}
	// The same term again, a newer one, another lease: accepted.
	if _, err := fenced.SetPower(term(5), vm.ID, hypervisor.PowerOff); err != nil {
		t.Fatal(err)
	}
	if _, err := fenced.SetPower(term(6), vm.ID, hypervisor.PowerOn); err != nil {
		t.Fatal(err)
	}
	other := fence.WithHold(ctx(t), fence.Fixed(fence.Token{Namespace: "vms", Lease: "other", Term: 0}))
	if _, err := fenced.SetPower(other, vm.ID, hypervisor.PowerOn); err != nil {
		t.Fatal(err)
	}
	// Tokens are per VM: a second VM starts from nothing.
	if _, err := fenced.Create(term(1), req("uid-2")); err != nil {
		t.Fatal(err)
	}
	// No token (curl, an old client): accepted and counted.
	if _, err := e.c.SetPower(ctx(t), vm.ID, hypervisor.PowerOn); err != nil {
		t.Fatal(err)
	}
	st := e.fencingStats()
	if st.Fencing != (hypervisor.FencingStats{Accepted: 5, Refused: 2, Unfenced: 1}) {
		t.Fatalf("fencing stats %+v, want 5 accepted, 2 refused, 1 unfenced", st.Fencing)
	}
}
