package vmcontroller_test

import (
	"bytes"
	"context"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/rein-k8s/rein/internal/testkit/audit"
	"github.com/rein-k8s/rein/internal/testkit/rbactest"
	"github.com/rein-k8s/rein/samples/vmcontroller/internal/lab"
)

// readyzAddr waits for p to say where it serves /readyz.
func readyzAddr(t *testing.T, p *lab.Process) string {
	t.Helper()
	re := regexp.MustCompile(`/readyz on http://([0-9.:]+)`)
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		if m := re.FindStringSubmatch(p.Log()); m != nil {
			return m[1]
		}
		if !p.Running() {
			t.Fatalf("%s exited:\n%s", p.Name, p.Log())
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s never said where it serves /readyz:\n%s", p.Name, p.Log())
	return ""
}

// missingReported waits until p's /readyz reports missing permissions
// and returns the roles of the YAML it says to add.
func missingReported(t *testing.T, p *lab.Process) []rbactest.Role {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	roles, err := rbactest.MissingFromReadyz(ctx, "http://"+readyzAddr(t, p)+"/readyz")
	if err != nil {
		t.Fatalf("%s: %v\nlog:\n%s", p.Name, err, p.Log())
	}
	return roles
}

// TestRBACFromTheCode runs the sample as a user bound to exactly what
// vmcontroller --print-rbac prints for its flags: it starts, leads,
// reconciles 200 VirtualMachines and deletes some, and the apiserver
// forbids none of its requests (the audit log). Then, for every printed
// rule in turn (all of them: one replica start each), a user bound to all
// the others gets a replica whose start-up check names exactly that rule,
// in /readyz, and which writes no Lease: it does not campaign.
func TestRBACFromTheCode(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the sample")
	}
	ctx := context.Background()
	f := newFixture(t)
	l := f.lab
	printed, err := l.PrintRBAC(ctx)
	if err != nil {
		t.Fatal(err)
	}
	again, err := l.PrintRBAC(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(printed, again) {
		t.Fatalf("--print-rbac printed differently:\n%s\n---- then ----\n%s", printed, again)
	}
	roles, err := rbactest.Parse(printed)
	if err != nil {
		t.Fatal(err)
	}

	// Exactly the printed rules.
	const exact = "rbac-exact"
	if err := rbactest.Bind(ctx, l.Admin, exact, rbactest.User(exact), roles); err != nil {
		t.Fatal(err)
	}
	user, err := l.Env.AddUser(exact)
	if err != nil {
		t.Fatal(err)
	}
	replica, err := l.StartReplica(ctx, "exact", user)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.AwaitLeader(ctx, nil, time.Minute); err != nil {
		t.Fatalf("%v\n%s", err, replica.Log())
	}
	f.createVMs(ctx)
	f.awaitConverged(2 * time.Minute)
	// Deleting runs the OnRemove handlers: the hypervisor's VM and the
	// children go, then the finalizers.
	for i := range 20 {
		if err := f.vms.VmV1alpha1().VirtualMachines(f.ns).Delete(ctx, vmName(i), metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 2*time.Minute, "20 VirtualMachines deleted", func() bool {
		list, err := f.vms.VmV1alpha1().VirtualMachines(f.ns).List(ctx, metav1.ListOptions{})
		return err == nil && len(list.Items) == vmCount-20
	})
	if !strings.Contains(replica.Log(), "RBAC: every permission this replica needs is granted") {
		t.Errorf("the replica did not report its permissions complete:\n%s", replica.Log())
	}
	replica.Kill()
	requests, forbidden, err := rbactest.Requests(l.Env, 0, exact)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range forbidden {
		t.Errorf("forbidden: %s", f)
	}
	t.Logf("bound to exactly the printed rules: %d requests, %d forbidden", requests, len(forbidden))
	if requests == 0 {
		t.Fatal("the audit log has no request of the replica's user")
	}

	// Every rule removed in turn.
	for n, at := range rbactest.EachRule(roles) {
		name := fmt.Sprintf("rbac-drop-%d", n)
		rest, removed := rbactest.Without(roles, at)
		want := rbactest.AllGrants([]rbactest.Role{removed})
		rule := removed.Rules[0]
		t.Run(fmt.Sprintf("without %s %v %v %v", removed.Kind, rule.Resources, rule.ResourceNames, rule.Verbs), func(t *testing.T) {
			if err := rbactest.Bind(ctx, l.Admin, name, rbactest.User(name), rest); err != nil {
				t.Fatal(err)
			}
			user, err := l.Env.AddUser(name)
			if err != nil {
				t.Fatal(err)
			}
			offset, err := audit.Read(l.Env, 0, func(*audit.Event) {})
			if err != nil {
				t.Fatal(err)
			}
			p, err := l.StartReplica(ctx, name, user)
			if err != nil {
				t.Fatal(err)
			}
			defer p.Kill()
			got := rbactest.AllGrants(missingReported(t, p))
			if !slices.Equal(got, want) {
				t.Errorf("reported missing\n%v\nwant (the rule removed)\n%v", got, want)
			}
			if !strings.Contains(p.Log(), "RBAC: this replica lacks") {
				t.Errorf("the log does not report the missing rule:\n%s", p.Log())
			}
			// It stands by: a moment later it still has written no Lease.
			time.Sleep(time.Second)
			writes, err := rbactest.LeaseWrites(l.Env, offset, name)
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range writes {
				t.Errorf("%s %s: a replica missing a permission campaigned", name, w)
			}
		})
	}
}

func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, timeout)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
