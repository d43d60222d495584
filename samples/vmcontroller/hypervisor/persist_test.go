package hypervisor_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rein-k8s/rein/samples/vmcontroller/hypervisor"
)

// persisted is the part of vms.json the tests look at.
type persisted struct {
	Version int `json:"version"`
	VMs     []struct {
		hypervisor.VM
		TransitionEndsAt time.Time `json:"transitionEndsAt"`
	} `json:"vms"`
}

func readFile(t *testing.T, dir string) persisted {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, "vms.json"))
	if err != nil {
		t.Fatal(err)
	}
	var p persisted
	if err := json.Unmarshal(data, &p); err != nil {
		t.Fatalf("vms.json does not parse: %v", err)
	}
	return p
}

func TestPersistence(t *testing.T) {
	e := start(t, hypervisor.Config{Transition: fast})
	a := e.create(req("a"))
	b := e.create(req("b"))
	c := e.create(req("c"))
	e.waitState(a.ID, hypervisor.StateRunning)
	e.waitState(b.ID, hypervisor.StateRunning)
	e.setPower(b.ID, hypervisor.PowerOff)
	e.waitState(b.ID, hypervisor.StateStopped)
	e.waitState(c.ID, hypervisor.StateRunning)
	if err := e.c.Delete(ctx(t), c.ID); err != nil {
		t.Fatal(err)
	}
	before, err := e.c.List(ctx(t))
	if err != nil {
		t.Fatal(err)
	}

	e = e.restart(hypervisor.Config{Transition: fast})
	after, err := e.c.List(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(after) != len(before) {
		t.Fatalf("after restart: %+v, want %+v", after, before)
	}
	for i := range before {
		x, y := before[i], after[i]
		if !x.CreatedAt.Equal(y.CreatedAt) {
			t.Fatalf("CreatedAt changed: %v, was %v", y.CreatedAt, x.CreatedAt)
		}
		x.CreatedAt, y.CreatedAt = time.Time{}, time.Time{}
		if x != y {
			t.Fatalf("after restart: %+v, want %+v", y, x)
		}
	}
	// Counters survive, IDs are not reused (not even the deleted one's),
	// and the token index is rebuilt.
	if st := e.stats(); st != (hypervisor.Stats{VMs: 2, Tokens: 2, Creates: 3, Deletes: 1}) {
		t.Fatalf("Stats after restart = %+v", st)
	}
	if again := e.create(req("a")); again.ID != a.ID {
		t.Fatalf("create with a known token after restart: %s, want %s", again.ID, a.ID)
	}
	if d := e.create(req("d")); d.ID != "vm-000004" {
		t.Fatalf("new VM after restart: %s, want vm-000004", d.ID)
	}
}

func TestTransitionsResumeAfterRestart(t *testing.T) {
	e := start(t, hypervisor.Config{Transition: time.Hour})
	on := e.create(req("on"))
	r := req("off")
	r.Power = hypervisor.PowerOff
	off := e.create(r)
	p := readFile(t, e.dir)
	for _, vm := range p.VMs {
		if vm.State != hypervisor.StateProvisioning || vm.TransitionEndsAt.IsZero() {
			t.Fatalf("persisted %+v, want Provisioning with an end", vm)
		}
	}
	// The new configuration's Transition caps the hour left.
	e = e.restart(hypervisor.Config{Transition: fast})
	e.waitState(on.ID, hypervisor.StateRunning)
	e.waitState(off.ID, hypervisor.StateStopped)
	for _, vm := range readFile(t, e.dir).VMs {
		if !vm.TransitionEndsAt.IsZero() {
			t.Fatalf("steady VM persisted with a transition end: %+v", vm)
		}
	}
}

// TestResumeUsesTimeLeft: a transition whose end has passed while the
// hypervisor was down ends at once after the restart, however long the
// configured Transition.
func TestResumeUsesTimeLeft(t *testing.T) {
	dir := t.TempDir()
	file := `{"version":1,"nextID":7,"creates":7,"deletes":0,"vms":[
	 {"id":"vm-000007","token":"t","name":"n","cpu":1,"memoryMiB":64,"image":"i","power":"On","state":"Starting",
	  "createdAt":"2024-01-01T00:00:00Z","transitionEndsAt":"2024-01-01T00:01:00Z"}]}`
	if err := os.WriteFile(filepath.Join(dir, "vms.json"), []byte(file), 0o644); err != nil {
		t.Fatal(err)
	}
	e := start(t, hypervisor.Config{DataDir: dir, Transition: time.Hour})
	e.waitState("vm-000007", hypervisor.StateRunning)
	if vm := e.create(req("new")); vm.ID != "vm-000008" {
		t.Fatalf("new VM: %s, want vm-000008", vm.ID)
	}
}

func TestCorruptFile(t *testing.T) {
	const vm = `{"id":"vm-000001","token":"t","name":"n","cpu":1,"memoryMiB":64,"image":"i","power":"On","state":"Running","createdAt":"2024-01-01T00:00:00Z"}`
	for name, content := range map[string]string{
		"not JSON":       `{"version":1,"vms":[`,
		"empty":          ``,
		"trailing data":  `{"version":1,"vms":[]} x`,
		"wrong version":  `{"version":2,"vms":[]}`,
		"unknown field":  `{"version":1,"vms":[],"extra":true}`,
		"duplicate id":   `{"version":1,"vms":[` + vm + `,` + vm + `]}`,
		"invalid state":  `{"version":1,"vms":[` + strings.Replace(vm, "Running", "Failed", 1) + `]}`,
		"invalid power":  `{"version":1,"vms":[` + strings.Replace(vm, `"On"`, `"Maybe"`, 1) + `]}`,
		"empty token":    `{"version":1,"vms":[` + strings.Replace(vm, `"token":"t"`, `"token":""`, 1) + `]}`,
		"negative count": `{"version":1,"creates":-1,"vms":[]}`,
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "vms.json")
			if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
			srv, err := hypervisor.NewServer(hypervisor.Config{DataDir: dir, Logger: quietLogger()})
			if err == nil {
				srv.Close()
				t.Fatal("NewServer accepted a corrupt vms.json")
			}
			if !strings.Contains(err.Error(), path) {
				t.Fatalf("error %q does not name %s", err, path)
			}
		})
	}
}

func TestNewServerConfigErrors(t *testing.T) {
	for name, cfg := range map[string]hypervisor.Config{
		"no data dir":         {},
		"negative latency":    {DataDir: t.TempDir(), Latency: -1},
		"negative transition": {DataDir: t.TempDir(), Transition: -1},
		"error rate above 1":  {DataDir: t.TempDir(), ErrorRate: 1.5},
		"error rate below 0":  {DataDir: t.TempDir(), ErrorRate: -0.1},
	} {
		if srv, err := hypervisor.NewServer(cfg); err == nil {
			srv.Close()
			t.Errorf("%s: NewServer accepted %+v", name, cfg)
		}
	}
	// A missing data directory is created.
	dir := filepath.Join(t.TempDir(), "a", "b")
	e := start(t, hypervisor.Config{DataDir: dir, Transition: fast})
	e.create(req("uid"))
	if _, err := os.Stat(filepath.Join(dir, "vms.json")); err != nil {
		t.Fatal(err)
	}
}

// TestAtomicWrites reads vms.json over and over while VMs are created,
// powered and deleted concurrently: it must parse every time, and no
// temporary file may remain.
func TestAtomicWrites(t *testing.T) {
	dir := t.TempDir()
	// A temporary file left by a crash is removed at start.
	stale := filepath.Join(dir, "vms.json.tmp-12345")
	if err := os.WriteFile(stale, []byte(`{"version":1,"vm`), 0o644); err != nil {
		t.Fatal(err)
	}
	e := start(t, hypervisor.Config{DataDir: dir, Transition: time.Millisecond})
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Fatalf("stale temporary file not removed: %v", err)
	}

	var done atomic.Bool
	var reads atomic.Int64
	readerErr := make(chan error, 1)
	go func() {
		defer close(readerErr)
		for !done.Load() {
			data, err := os.ReadFile(filepath.Join(dir, "vms.json"))
			if os.IsNotExist(err) {
				continue // not written yet
			}
			if err != nil {
				readerErr <- err
				return
			}
			var p persisted
			if err := json.Unmarshal(data, &p); err != nil {
				readerErr <- err
				return
			}
			reads.Add(1)
		}
	}()
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := range 10 {
				vm, err := e.c.Create(ctx(t), req(string(rune('a'+w))+string(rune('a'+i))))
				if err != nil {
					t.Error(err)
					return
				}
				if _, err := e.c.SetPower(ctx(t), vm.ID, hypervisor.PowerOff); err != nil {
					t.Error(err)
					return
				}
				if i%3 == 0 {
					if err := e.c.Delete(ctx(t), vm.ID); err != nil {
						t.Error(err)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	done.Store(true)
	if err := <-readerErr; err != nil {
		t.Fatalf("vms.json read while being written: %v", err)
	}
	if reads.Load() == 0 {
		t.Fatal("the reader never read vms.json")
	}
	e.stop()

	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Name() != "vms.json" {
		names := []string{}
		for _, de := range entries {
			names = append(names, de.Name())
		}
		t.Fatalf("data directory holds %v, want only vms.json", names)
	}
	if p := readFile(t, dir); len(p.VMs) != 4*10-4*4 {
		t.Fatalf("vms.json holds %d VMs, want %d", len(p.VMs), 4*10-4*4)
	}
}
