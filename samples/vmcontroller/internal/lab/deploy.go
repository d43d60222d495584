package lab

import (
	"fmt"
	"os"
	"path/filepath"

	appsv1 "k8s.io/api/apps/v1"
	"sigs.k8s.io/yaml"
)

// DeployArgs are the controller's arguments in deploy/deployment.yaml, and
// the environment the pod gives it that changes what it needs
// (POD_NAMESPACE: the Deployment's namespace, deploy/kustomization.yaml's):
// what `make generate` runs `vmcontroller --print-rbac` with to write
// deploy/rbac.yaml.
func DeployArgs(repoRoot string) (args, env []string, err error) {
	deploy := filepath.Join(repoRoot, "samples/vmcontroller/deploy")
	raw, err := os.ReadFile(filepath.Join(deploy, "deployment.yaml"))
	if err != nil {
		return nil, nil, err
	}
	var d appsv1.Deployment
	if err := yaml.Unmarshal(raw, &d); err != nil {
		return nil, nil, fmt.Errorf("deploy/deployment.yaml: %w", err)
	}
	found := false
	for _, c := range d.Spec.Template.Spec.Containers {
		if c.Name == "vmcontroller" {
			args, found = c.Args, true
		}
	}
	if !found {
		return nil, nil, fmt.Errorf("deploy/deployment.yaml has no container named vmcontroller")
	}
	raw, err = os.ReadFile(filepath.Join(deploy, "kustomization.yaml"))
	if err != nil {
		return nil, nil, err
	}
	var k struct {
		Namespace string `json:"namespace"`
	}
	if err := yaml.Unmarshal(raw, &k); err != nil || k.Namespace == "" {
		return nil, nil, fmt.Errorf("deploy/kustomization.yaml names no namespace (%v)", err)
	}
	return args, []string{"POD_NAMESPACE=" + k.Namespace}, nil
}
