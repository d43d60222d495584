package vmcontroller_test

import (
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
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

// TestDeployWebhookWiring: the webhook configurations and the CRD's
// conversion stanza (generated) call the Service of webhook-service.yaml,
// whose target port is the container port the replicas serve on
// (--webhook-bind-address), and the self-managed certificate is made for
// the Service's DNS name (--webhook-host).
func TestDeployWebhookWiring(t *testing.T) {
	_, ms := loadDeploy(t)
	var c *corev1.Container
	var svc *corev1.Service
	var called []string // namespace/name/port of every Service reference
	for _, m := range ms {
		switch m.obj.GetKind() {
		case "Deployment":
			if m.obj.GetName() != "vmcontroller" {
				continue
			}
			var d appsv1.Deployment
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(m.obj.Object, &d); err != nil {
				t.Fatal(err)
			}
			c = &d.Spec.Template.Spec.Containers[0]
		case "Service":
			if m.obj.GetName() == "vmcontroller-webhook" {
				svc = &corev1.Service{}
				if err := runtime.DefaultUnstructuredConverter.FromUnstructured(m.obj.Object, svc); err != nil {
					t.Fatal(err)
				}
			}
		case "ValidatingWebhookConfiguration", "MutatingWebhookConfiguration", "CustomResourceDefinition":
			var refs []map[string]any
			hooks, _, _ := unstructured.NestedSlice(m.obj.Object, "webhooks")
			for _, h := range hooks {
				if hook, ok := h.(map[string]any); ok {
					if ref, ok, _ := unstructured.NestedMap(hook, "clientConfig", "service"); ok {
						refs = append(refs, ref)
					}
				}
			}
			if ref, ok, _ := unstructured.NestedMap(m.obj.Object, "spec", "conversion", "webhook", "clientConfig", "service"); ok {
				refs = append(refs, ref)
			}
			if len(refs) == 0 && m.obj.GetKind() != "CustomResourceDefinition" {
				t.Errorf("deploy/%v calls no Service", m)
			}
			for _, ref := range refs {
				port := "443"
				if p, ok := ref["port"]; ok {
					port = fmt.Sprint(p)
				}
				called = append(called, fmt.Sprintf("%v/%v/%s", ref["namespace"], ref["name"], port))
			}
		}
	}
	if c == nil || svc == nil {
		t.Fatal("deploy/: no Deployment vmcontroller or no Service vmcontroller-webhook")
	}
	if len(called) < 3 {
		t.Fatalf("the configurations and the CRD call %d Services, want the validating and mutating webhooks and the conversion", len(called))
	}
	for _, ref := range called {
		if want := fmt.Sprintf("vm-system/vmcontroller-webhook/%d", svc.Spec.Ports[0].Port); ref != want {
			t.Errorf("a webhook calls %s, want the Service %s (rein-gen --webhook-service)", ref, want)
		}
	}
	args := map[string]string{}
	for _, a := range c.Args {
		if k, v, ok := strings.Cut(a, "="); ok {
			args[k] = v
		}
	}
	_, port, err := net.SplitHostPort(args["--webhook-bind-address"])
	if err != nil {
		t.Fatalf("--webhook-bind-address=%q: %v", args["--webhook-bind-address"], err)
	}
	target := svc.Spec.Ports[0].TargetPort
	var containerPort int32
	for _, p := range c.Ports {
		if (target.Type == intstr.String && p.Name == target.StrVal) || (target.Type == intstr.Int && p.ContainerPort == target.IntVal) {
			containerPort = p.ContainerPort
		}
	}
	if strconv.Itoa(int(containerPort)) != port {
		t.Errorf("the Service targets container port %s (%d), but the replicas serve the webhooks on %s", target.String(), containerPort, port)
	}
	if want := "vmcontroller-webhook.vm-system.svc"; args["--webhook-host"] != want {
		t.Errorf("--webhook-host=%q: the apiserver dials %s", args["--webhook-host"], want)
	}
}
