package admission

import (
	"context"
	"errors"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/rein-k8s/rein/samples/vmcontroller/api/vm/v1alpha1"
	"github.com/rein-k8s/rein/samples/vmcontroller/hypervisor"
)

// catalogue refuses the images it lists, or fails every call with err.
type catalogue struct {
	refused map[string]string
	err     error
	calls   int
}

func (c *catalogue) CheckImage(_ context.Context, image string) (*hypervisor.ImageCheck, error) {
	c.calls++
	if c.err != nil {
		return nil, c.err
	}
	reason, refused := c.refused[image]
	return &hypervisor.ImageCheck{Image: image, Allowed: !refused, Reason: reason}, nil
}

type secrets map[string]bool // namespace/name

func (s secrets) Get(namespace, name string) (*corev1.Secret, error) {
	if !s[namespace+"/"+name] {
		return nil, apierrors.NewNotFound(corev1.Resource("secrets"), name)
	}
	return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name}}, nil
}

func vm(image, userData, vmID string) *v1alpha1.VirtualMachine {
	return &v1alpha1.VirtualMachine{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "a"},
		Spec:       v1alpha1.VirtualMachineSpec{CPU: 2, Image: image, UserDataSecret: userData},
		Status:     v1alpha1.VirtualMachineStatus{VMID: vmID},
	}
}

func TestValidate(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name         string
		old, new     *v1alpha1.VirtualMachine
		down         bool
		wantErr      string // "" allows
		wantWarnings []string
		wantCalls    int
	}{
		{name: "allowed image", new: vm("ubuntu", "", ""), wantCalls: 1},
		{name: "refused image", new: vm("forbidden/x", "", ""), wantErr: `spec.image "forbidden/x" is not in the hypervisor's catalogue: no`, wantCalls: 1},
		{name: "catalogue down warns", new: vm("ubuntu", "", ""), down: true, wantWarnings: []string{"was not checked against the hypervisor's catalogue (connection refused)"}, wantCalls: 1},
		{name: "image unchanged is not checked again", old: vm("forbidden/x", "", "vm-1"), new: vm("forbidden/x", "", "vm-1")},
		{name: "image changed before provisioning", old: vm("ubuntu", "", ""), new: vm("debian", "", ""), wantCalls: 1},
		{name: "image changed after provisioning", old: vm("ubuntu", "", "vm-7"), new: vm("debian", "", "vm-7"),
			wantErr: `spec.image cannot change from "ubuntu" to "debian": the VM (vm-7) is provisioned`},
		{name: "missing user data warns", new: vm("ubuntu", "gone", ""), wantWarnings: []string{"Secret ns/gone does not exist (yet)"}, wantCalls: 1},
		{name: "present user data", new: vm("ubuntu", "there", ""), wantCalls: 1},
		{name: "delete", old: vm("ubuntu", "", "vm-1")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &catalogue{refused: map[string]string{"forbidden/x": "no"}}
			if tc.down {
				c.err = errors.New("connection refused")
			}
			v := &Validator{Images: c, Secrets: secrets{"ns/there": true}}
			warnings, err := v.Validate(ctx, tc.old, tc.new)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("denied: %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
			}
			if len(warnings) != len(tc.wantWarnings) {
				t.Fatalf("warnings %q, want %d", warnings, len(tc.wantWarnings))
			}
			for i, w := range tc.wantWarnings {
				if !strings.Contains(warnings[i], w) {
					t.Errorf("warning %q does not contain %q", warnings[i], w)
				}
			}
			if c.calls != tc.wantCalls {
				t.Errorf("%d catalogue calls, want %d", c.calls, tc.wantCalls)
			}
		})
	}
}

func TestDefault(t *testing.T) {
	ctx := context.Background()
	noMemory := vm("ubuntu", "", "")
	noMemory.Spec.CPU = 3
	if err := Default(ctx, noMemory); err != nil {
		t.Fatal(err)
	}
	if want := resource.MustParse("3Gi"); noMemory.Spec.Memory.Cmp(want) != 0 || noMemory.Spec.Memory.String() != "3Gi" {
		t.Errorf("memory %s, want 3Gi", noMemory.Spec.Memory.String())
	}
	stated := vm("ubuntu", "", "")
	stated.Spec.Memory = resource.MustParse("512Mi")
	if err := Default(ctx, stated); err != nil {
		t.Fatal(err)
	}
	if stated.Spec.Memory.String() != "512Mi" {
		t.Errorf("a stated memory became %s", stated.Spec.Memory.String())
	}
}
