package hypervisor_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rein-k8s/rein/samples/vmcontroller/hypervisor"
)

func TestCreateIdempotentConcurrent(t *testing.T) {
	e := start(t, hypervisor.Config{Transition: fast})
	const n = 10
	ids := make([]string, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			vm, err := e.c.Create(context.Background(), req("uid-1"))
			errs[i] = err
			if err == nil {
				ids[i] = vm.ID
			}
		})
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("create %d: %v", i, errs[i])
		}
		if ids[i] != ids[0] {
			t.Fatalf("create %d returned %s, create 0 returned %s", i, ids[i], ids[0])
		}
	}
	vms, err := e.c.List(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(vms) != 1 || vms[0].ID != ids[0] || vms[0].Token != "uid-1" {
		t.Fatalf("List = %+v, want the one VM %s", vms, ids[0])
	}
	if st := e.stats(); st != (hypervisor.Stats{VMs: 1, Tokens: 1, Duplicates: 0, Creates: 1}) {
		t.Fatalf("Stats = %+v", st)
	}
}

func TestCreateStatusAndIgnoredFields(t *testing.T) {
	e := start(t, hypervisor.Config{Transition: time.Hour})
	post := func(body string) (int, hypervisor.VM) {
		t.Helper()
		resp, err := http.Post(e.hs.URL+"/vms", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var vm hypervisor.VM
		if err := json.NewDecoder(resp.Body).Decode(&vm); err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, vm
	}
	status, first := post(`{"token":"t","name":"a","cpu":1,"memoryMiB":512,"image":"img"}`)
	if status != http.StatusCreated {
		t.Fatalf("first create: status %d, want 201", status)
	}
	if first.ID != "vm-000001" || first.State != hypervisor.StateProvisioning || first.Power != hypervisor.PowerOn {
		t.Fatalf("first create: %+v", first)
	}
	// A second create with the token returns the VM as it is.
	status, second := post(`{"token":"t","name":"b","cpu":8,"memoryMiB":1,"image":"other","power":"Off"}`)
	if status != http.StatusOK {
		t.Fatalf("second create: status %d, want 200", status)
	}
	if second != first {
		t.Fatalf("second create returned %+v, want %+v", second, first)
	}
}

func TestStateMachine(t *testing.T) {
	e := start(t, hypervisor.Config{Transition: fast})
	vm := e.create(req("uid"))
	if vm.State != hypervisor.StateProvisioning || vm.Power != hypervisor.PowerOn {
		t.Fatalf("created %+v, want Provisioning with power On", vm)
	}
	e.waitState(vm.ID, hypervisor.StateRunning)

	// Powering on a running VM changes nothing.
	if got := e.setPower(vm.ID, hypervisor.PowerOn); got.State != hypervisor.StateRunning {
		t.Fatalf("power On on a running VM: %s", got.State)
	}

	got := e.setPower(vm.ID, hypervisor.PowerOff)
	if got.State != hypervisor.StateStopping || got.Power != hypervisor.PowerOff {
		t.Fatalf("power Off: %+v, want Stopping", got)
	}
	e.waitState(vm.ID, hypervisor.StateStopped)
	if got := e.setPower(vm.ID, hypervisor.PowerOff); got.State != hypervisor.StateStopped {
		t.Fatalf("power Off on a stopped VM: %s", got.State)
	}

	got = e.setPower(vm.ID, hypervisor.PowerOn)
	if got.State != hypervisor.StateStarting || got.Power != hypervisor.PowerOn {
		t.Fatalf("power On: %+v, want Starting", got)
	}
	final := e.waitState(vm.ID, hypervisor.StateRunning)
	if final.ID != vm.ID || final.Token != vm.Token || !final.CreatedAt.Equal(vm.CreatedAt) {
		t.Fatalf("VM changed identity: %+v, was %+v", final, vm)
	}
}

func TestCreatePoweredOff(t *testing.T) {
	e := start(t, hypervisor.Config{Transition: fast})
	r := req("uid")
	r.Power = hypervisor.PowerOff
	vm := e.create(r)
	if vm.State != hypervisor.StateProvisioning || vm.Power != hypervisor.PowerOff {
		t.Fatalf("created %+v", vm)
	}
	e.waitState(vm.ID, hypervisor.StateStopped)
}

// TestPowerDuringTransitions uses an hour-long Transition so that the VM
// stays in its transitions while the test asks for power, then restarts the
// server with a short one to let them finish.
func TestPowerDuringTransitions(t *testing.T) {
	e := start(t, hypervisor.Config{Transition: time.Hour})
	vm := e.create(req("uid"))

	// During Provisioning a power request only changes the target.
	for _, p := range []hypervisor.Power{hypervisor.PowerOff, hypervisor.PowerOn, hypervisor.PowerOff, hypervisor.PowerOff} {
		got := e.setPower(vm.ID, p)
		if got.State != hypervisor.StateProvisioning || got.Power != p {
			t.Fatalf("power %s while provisioning: %+v", p, got)
		}
	}
	e = e.restart(hypervisor.Config{Transition: fast})
	e.waitState(vm.ID, hypervisor.StateStopped) // the last target

	// Starting, then Off: the transition turns around.
	e = e.restart(hypervisor.Config{Transition: time.Hour})
	if got := e.setPower(vm.ID, hypervisor.PowerOn); got.State != hypervisor.StateStarting {
		t.Fatalf("power On: %s, want Starting", got.State)
	}
	if got := e.setPower(vm.ID, hypervisor.PowerOn); got.State != hypervisor.StateStarting {
		t.Fatalf("power On again: %s, want still Starting", got.State)
	}
	if got := e.setPower(vm.ID, hypervisor.PowerOff); got.State != hypervisor.StateStopping || got.Power != hypervisor.PowerOff {
		t.Fatalf("power Off while starting: %+v, want Stopping", got)
	}
	if got := e.setPower(vm.ID, hypervisor.PowerOn); got.State != hypervisor.StateStarting || got.Power != hypervisor.PowerOn {
		t.Fatalf("power On while stopping: %+v, want Starting", got)
	}
	e = e.restart(hypervisor.Config{Transition: fast})
	e.waitState(vm.ID, hypervisor.StateRunning)
}

func TestPowerErrors(t *testing.T) {
	e := start(t, hypervisor.Config{Transition: fast})
	vm := e.create(req("uid"))
	_, err := e.c.SetPower(ctx(t), vm.ID, "Sideways")
	wantCode(t, err, http.StatusBadRequest, hypervisor.CodeBadRequest)
	_, err = e.c.SetPower(ctx(t), "vm-999999", hypervisor.PowerOff)
	wantCode(t, err, http.StatusNotFound, hypervisor.CodeNotFound)
	if !hypervisor.IsNotFound(err) {
		t.Fatalf("IsNotFound(%v) = false", err)
	}
}

func TestRefusedImage(t *testing.T) {
	e := start(t, hypervisor.Config{Transition: fast, RefusedImages: []string{"", "bad/", "evil"}})
	for _, image := range []string{"bad/img:1", "evil", "evil-twin"} {
		r := req("uid-" + image)
		r.Image = image
		_, err := e.c.Create(ctx(t), r)
		wantCode(t, err, http.StatusUnprocessableEntity, hypervisor.CodeImageRefused)
		if !hypervisor.IsImageRefused(err) || hypervisor.IsNotFound(err) {
			t.Fatalf("%s: IsImageRefused/IsNotFound wrong for %v", image, err)
		}
	}
	for _, image := range []string{"good/bad/", "ubuntu"} { // prefixes only; "" ignored
		r := req("uid-" + image)
		r.Image = image
		e.create(r)
	}
	if st := e.stats(); st.VMs != 2 || st.Creates != 2 {
		t.Fatalf("Stats = %+v, want the 2 accepted VMs", st)
	}
	// The catalogue check says the same, and creates nothing.
	for image, allowed := range map[string]bool{"bad/img:1": false, "evil-twin": false, "good/bad/": true, "ubuntu": true} {
		check, err := e.c.CheckImage(ctx(t), image)
		if err != nil {
			t.Fatal(err)
		}
		if check.Image != image || check.Allowed != allowed || (check.Reason == "") == !allowed {
			t.Errorf("CheckImage(%q) = %+v, want allowed %v with a reason when refused", image, check, allowed)
		}
	}
	_, err := e.c.CheckImage(ctx(t), "")
	wantCode(t, err, http.StatusBadRequest, hypervisor.CodeBadRequest)
	if st := e.stats(); st.VMs != 2 || st.Creates != 2 {
		t.Fatalf("Stats = %+v after the checks, want the 2 VMs still", st)
	}
}

func TestBadRequest(t *testing.T) {
	e := start(t, hypervisor.Config{Transition: fast})
	for name, mutate := range map[string]func(*hypervisor.CreateRequest){
		"cpu 0":         func(r *hypervisor.CreateRequest) { r.CPU = 0 },
		"cpu -1":        func(r *hypervisor.CreateRequest) { r.CPU = -1 },
		"memory 0":      func(r *hypervisor.CreateRequest) { r.MemoryMiB = 0 },
		"empty token":   func(r *hypervisor.CreateRequest) { r.Token = "" },
		"blank token":   func(r *hypervisor.CreateRequest) { r.Token = "  " },
		"empty image":   func(r *hypervisor.CreateRequest) { r.Image = "" },
		"invalid power": func(r *hypervisor.CreateRequest) { r.Power = "on" },
	} {
		r := req("uid")
		mutate(&r)
		_, err := e.c.Create(ctx(t), r)
		if e := apiError(t, err); e.Status != http.StatusBadRequest || e.Code != hypervisor.CodeBadRequest {
			t.Errorf("%s: %v, want 400 BadRequest", name, err)
		}
	}
	for _, body := range []string{`{`, `{"token":"t","cpu":1,"memoryMiB":1,"image":"i","extra":1}`, `{"token":"t"} {}`, `[]`} {
		resp, err := http.Post(e.hs.URL+"/vms", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		var apiErr hypervisor.Error
		_ = json.NewDecoder(resp.Body).Decode(&apiErr)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest || apiErr.Code != hypervisor.CodeBadRequest || apiErr.Message == "" {
			t.Errorf("body %s: status %d, error %+v, want 400 BadRequest", body, resp.StatusCode, apiErr)
		}
	}
	// The client refuses empty IDs itself: "/vms/" is not a VM.
	_, err := e.c.Get(ctx(t), "")
	wantCode(t, err, http.StatusBadRequest, hypervisor.CodeBadRequest)
	if st := e.stats(); st.VMs != 0 {
		t.Fatalf("Stats = %+v, want no VM", st)
	}
}

func TestErrorInjectionEveryCall(t *testing.T) {
	e := start(t, hypervisor.Config{Transition: fast})
	vm := e.create(req("uid"))
	e.waitState(vm.ID, hypervisor.StateRunning)

	e = e.restart(hypervisor.Config{Transition: fast, ErrorRate: 1, Seed: 7})
	calls := map[string]func() error{
		"Create":      func() error { _, err := e.c.Create(ctx(t), req("other")); return err },
		"Create same": func() error { _, err := e.c.Create(ctx(t), req("uid")); return err },
		"Get":         func() error { _, err := e.c.Get(ctx(t), vm.ID); return err },
		"List":        func() error { _, err := e.c.List(ctx(t)); return err },
		"FindByToken": func() error { _, err := e.c.FindByToken(ctx(t), "uid"); return err },
		"SetPower":    func() error { _, err := e.c.SetPower(ctx(t), vm.ID, hypervisor.PowerOff); return err },
		"Delete":      func() error { return e.c.Delete(ctx(t), vm.ID) },
	}
	for range 5 {
		for name, call := range calls {
			err := call()
			if err == nil {
				t.Fatalf("%s succeeded with ErrorRate 1", name)
			}
			if ae := apiError(t, err); ae.Status != http.StatusServiceUnavailable || ae.Code != hypervisor.CodeInjected {
				t.Fatalf("%s: %v, want 503 Injected", name, err)
			}
		}
	}
	// /stats and /healthz are exempt.
	if st := e.stats(); st != (hypervisor.Stats{VMs: 1, Tokens: 1, Creates: 1}) {
		t.Fatalf("Stats = %+v", st)
	}
	resp, err := http.Get(e.hs.URL + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/healthz: %d", resp.StatusCode)
	}

	// Nothing changed.
	e = e.restart(hypervisor.Config{Transition: fast})
	vms, err := e.c.List(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(vms) != 1 || vms[0].ID != vm.ID || vms[0].State != hypervisor.StateRunning || vms[0].Power != hypervisor.PowerOn {
		t.Fatalf("after injected failures: %+v", vms)
	}
}

func TestErrorInjectionHalf(t *testing.T) {
	e := start(t, hypervisor.Config{Transition: fast, ErrorRate: 0.5, Seed: 42})
	const n = 40
	succeeded := map[string]bool{}
	failures := 0
	for i := range n {
		token := fmt.Sprintf("uid-%02d", i)
		_, err := e.c.Create(ctx(t), req(token))
		switch {
		case err == nil:
			succeeded[token] = true
		case hypervisor.IsNotFound(err) || apiError(t, err).Code != hypervisor.CodeInjected:
			t.Fatalf("create %s: %v", token, err)
		default:
			failures++
		}
	}
	if failures == 0 || failures == n {
		t.Fatalf("%d of %d creates failed with ErrorRate 0.5", failures, n)
	}
	// A failed create made nothing.
	if st := e.stats(); st.VMs != len(succeeded) || st.Creates != int64(len(succeeded)) {
		t.Fatalf("Stats = %+v, want %d VMs", st, len(succeeded))
	}

	// Concurrent clients retrying through the failures: creates (again, for
	// all tokens) and power requests converge, without duplicates.
	retry := func(f func() error) {
		for {
			err := f()
			if err == nil {
				return
			}
			var ae *hypervisor.Error
			if !errors.As(err, &ae) || ae.Code != hypervisor.CodeInjected {
				t.Errorf("unexpected error: %v", err)
				return
			}
		}
	}
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := range n {
				token := fmt.Sprintf("uid-%02d", (i+w*7)%n)
				var vm *hypervisor.VM
				retry(func() (err error) { vm, err = e.c.Create(context.Background(), req(token)); return err })
				if vm == nil {
					return
				}
				retry(func() error { _, err := e.c.SetPower(context.Background(), vm.ID, hypervisor.PowerOff); return err })
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	if st := e.stats(); st != (hypervisor.Stats{VMs: n, Tokens: n, Duplicates: 0, Creates: n}) {
		t.Fatalf("Stats = %+v", st)
	}
	e = e.restart(hypervisor.Config{Transition: fast})
	vms, err := e.c.List(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, vm := range vms {
		if vm.Power != hypervisor.PowerOff {
			t.Fatalf("vm %s: power %s, want Off", vm.ID, vm.Power)
		}
		e.waitState(vm.ID, hypervisor.StateStopped)
	}
}

func TestDelete(t *testing.T) {
	e := start(t, hypervisor.Config{Transition: time.Hour})
	vm := e.create(req("uid"))
	if err := e.c.Delete(ctx(t), vm.ID); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if _, err := e.c.Get(ctx(t), vm.ID); !hypervisor.IsNotFound(err) {
		t.Fatalf("Get after Delete: %v, want NotFound", err)
	}
	if err := e.c.Delete(ctx(t), vm.ID); !hypervisor.IsNotFound(err) {
		t.Fatalf("second Delete: %v, want NotFound", err)
	}
	if _, err := e.c.FindByToken(ctx(t), "uid"); !hypervisor.IsNotFound(err) {
		t.Fatalf("FindByToken after Delete: %v, want NotFound", err)
	}
	if st := e.stats(); st != (hypervisor.Stats{Creates: 1, Deletes: 1}) {
		t.Fatalf("Stats = %+v", st)
	}
	// The token is free again: a new VM, with a new ID.
	again := e.create(req("uid"))
	if again.ID == vm.ID {
		t.Fatalf("recreated VM reuses ID %s", vm.ID)
	}
}

func TestDeleteDuringTransition(t *testing.T) {
	e := start(t, hypervisor.Config{Transition: fast})
	vm := e.create(req("uid"))
	if err := e.c.Delete(ctx(t), vm.ID); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	// The stopped timer must not resurrect it: create another VM and
	// wait for its transition, which was scheduled later.
	other := e.create(req("other"))
	e.waitState(other.ID, hypervisor.StateRunning)
	if _, err := e.c.Get(ctx(t), vm.ID); !hypervisor.IsNotFound(err) {
		t.Fatalf("Get after Delete: %v, want NotFound", err)
	}
}

func TestListAndStats(t *testing.T) {
	e := start(t, hypervisor.Config{Transition: fast})
	const n = 12 // more than 9, so that the IDs' padding matters
	want := make([]string, 0, n)
	for i := n - 1; i >= 0; i-- {
		want = append(want, e.create(req(fmt.Sprintf("uid-%d", i))).ID)
	}
	vms, err := e.c.List(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(vms) != n {
		t.Fatalf("List returned %d VMs, want %d", len(vms), n)
	}
	if !sort.SliceIsSorted(vms, func(i, j int) bool { return vms[i].ID < vms[j].ID }) {
		t.Fatalf("List not sorted by ID: %v", vms)
	}
	for i, vm := range vms {
		if vm.ID != want[i] {
			t.Fatalf("List[%d] = %s, want %s", i, vm.ID, want[i])
		}
	}

	found, err := e.c.FindByToken(ctx(t), "uid-3")
	if err != nil || found.Token != "uid-3" {
		t.Fatalf("FindByToken(uid-3) = %+v, %v", found, err)
	}
	if _, err := e.c.FindByToken(ctx(t), "nobody"); !hypervisor.IsNotFound(err) {
		t.Fatalf("FindByToken(nobody): %v, want NotFound", err)
	}
	for query, wantLen := range map[string]int{"?token=uid-3": 1, "?token=nobody": 0, "?token=": 0, "": n} {
		resp, err := http.Get(e.hs.URL + "/vms" + query)
		if err != nil {
			t.Fatal(err)
		}
		var got []hypervisor.VM
		err = json.NewDecoder(resp.Body).Decode(&got)
		resp.Body.Close()
		if err != nil || got == nil || len(got) != wantLen {
			t.Fatalf("GET /vms%s: %d VMs (%v), want %d", query, len(got), err, wantLen)
		}
	}

	if err := e.c.Delete(ctx(t), found.ID); err != nil {
		t.Fatal(err)
	}
	if st := e.stats(); st != (hypervisor.Stats{VMs: n - 1, Tokens: n - 1, Creates: n, Deletes: 1}) {
		t.Fatalf("Stats = %+v", st)
	}
}

func TestLatency(t *testing.T) {
	const latency = 30 * time.Millisecond
	e := start(t, hypervisor.Config{Transition: fast, Latency: latency})
	began := time.Now()
	e.create(req("uid"))
	if d := time.Since(began); d < latency {
		t.Fatalf("create took %v, want at least %v", d, latency)
	}
}

func TestClose(t *testing.T) {
	e := start(t, hypervisor.Config{Transition: fast})
	vm := e.create(req("uid"))
	if err := e.srv.Close(); err != nil {
		t.Fatal(err)
	}
	if err := e.srv.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	for name, call := range map[string]func() error{
		"Get":    func() error { _, err := e.c.Get(ctx(t), vm.ID); return err },
		"Create": func() error { _, err := e.c.Create(ctx(t), req("x")); return err },
		"Stats":  func() error { _, err := e.c.Stats(ctx(t)); return err },
	} {
		err := call()
		if ae := apiError(t, err); ae.Status != http.StatusServiceUnavailable || ae.Code != hypervisor.CodeUnavailable {
			t.Errorf("%s after Close: %v, want 503 Unavailable", name, err)
		}
	}

	// Close stopped the transition: vms.json keeps the VM Provisioning.
	// (Waiting is the only way to see that something does not happen.)
	time.Sleep(10 * fast)
	if got := readFile(t, e.dir); len(got.VMs) != 1 || got.VMs[0].State != hypervisor.StateProvisioning {
		t.Fatalf("vms.json after Close: %+v, want the VM still Provisioning", got)
	}
}

func TestUnknownRouteIsNotNotFound(t *testing.T) {
	e := start(t, hypervisor.Config{Transition: fast})
	resp, err := http.Get(e.hs.URL + "/nope")
	if err != nil {
		t.Fatal(err)
	}
	var apiErr hypervisor.Error
	_ = json.NewDecoder(resp.Body).Decode(&apiErr)
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound || apiErr.Code != hypervisor.CodeNoRoute {
		t.Fatalf("GET /nope: %d %+v", resp.StatusCode, apiErr)
	}

	// A 404 that is not the hypervisor's (a wrong URL, a proxy) must not
	// look like a deleted VM.
	plain := httptest.NewServer(http.NotFoundHandler())
	defer plain.Close()
	c := hypervisor.NewClient(plain.URL+"/", nil)
	err = c.Delete(ctx(t), "vm-000001")
	if err == nil || hypervisor.IsNotFound(err) {
		t.Fatalf("Delete against a plain 404: %v, want an error that is not NotFound", err)
	}
	if ae := apiError(t, err); ae.Status != http.StatusNotFound || !bytes.Contains([]byte(ae.Message), []byte("404")) {
		t.Fatalf("Delete against a plain 404: %+v", ae)
	}
}
