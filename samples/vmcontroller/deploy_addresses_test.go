package vmcontroller_test

import (
	"net"
	"strconv"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/rein-k8s/rein/pkg/start"
)

// TestDeployControllerListensOnPodAddresses: rein serves /metrics and the
// probes on loopback by default, which the kubelet and Prometheus cannot
// reach; the controller's Deployment must pass addresses that they can,
// on the container ports its probes use.
func TestDeployControllerListensOnPodAddresses(t *testing.T) {
	for name, def := range map[string]string{"metrics": start.DefaultMetricsBindAddress, "probes": start.DefaultHealthProbeBindAddress} {
		if host, _, err := net.SplitHostPort(def); err != nil || !net.ParseIP(host).IsLoopback() {
			t.Fatalf("rein's default %s address %q is not loopback: this test's premise is gone", name, def)
		}
	}
	_, ms := loadDeploy(t)
	var c *corev1.Container
	for _, m := range ms {
		if m.obj.GetKind() != "Deployment" || m.obj.GetName() != "vmcontroller" {
			continue
		}
		var d appsv1.Deployment
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(m.obj.Object, &d); err != nil {
			t.Fatalf("deploy/%v: %v", m, err)
		}
		for i := range d.Spec.Template.Spec.Containers {
			if d.Spec.Template.Spec.Containers[i].Name == "vmcontroller" {
				c = &d.Spec.Template.Spec.Containers[i]
			}
		}
	}
	if c == nil {
		t.Fatal("deploy/: no Deployment vmcontroller with a container vmcontroller")
	}
	ports := map[string]int32{}
	for _, p := range c.Ports {
		ports[p.Name] = p.ContainerPort
	}
	// The port each flag must serve on: the probes' port and the metrics port.
	want := map[string]intstr.IntOrString{"--metrics-bind-address": intstr.FromString("metrics")}
	for _, p := range []*corev1.Probe{c.LivenessProbe, c.ReadinessProbe} {
		if p == nil || p.HTTPGet == nil {
			t.Fatal("deploy/deployment.yaml: the controller needs HTTP liveness and readiness probes")
		}
		want["--health-probe-bind-address"] = p.HTTPGet.Port
	}
	for flag, port := range want {
		addr := ""
		for _, a := range c.Args {
			if v, ok := strings.CutPrefix(a, flag+"="); ok {
				addr = v
			}
		}
		if addr == "" {
			t.Errorf("deploy/deployment.yaml does not pass %s=:PORT: rein's loopback default is unreachable from outside the pod", flag)
			continue
		}
		host, p, err := net.SplitHostPort(addr)
		if err != nil {
			t.Errorf("deploy/deployment.yaml: %s=%s: %v", flag, addr, err)
			continue
		}
		if ip := net.ParseIP(host); host == "localhost" || (ip != nil && ip.IsLoopback()) {
			t.Errorf("deploy/deployment.yaml: %s=%s is loopback: the kubelet and Prometheus cannot reach it", flag, addr)
		}
		wantPort := port.String()
		if port.Type == intstr.String {
			n, ok := ports[port.StrVal]
			if !ok {
				t.Errorf("deploy/deployment.yaml: no container port named %q", port.StrVal)
				continue
			}
			wantPort = strconv.Itoa(int(n))
		}
		if p != wantPort {
			t.Errorf("deploy/deployment.yaml: %s=%s, but the container port %s is %s", flag, addr, port.String(), wantPort)
		}
	}
}
