package webhook_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/sirupsen/logrus"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"

	"github.com/rein-k8s/rein/internal/certs"
	"github.com/rein-k8s/rein/pkg/webhook"
)

// A validating and a defaulting webhook for ConfigMaps, asked what the
// apiserver would ask. In a replica, pass the server as
// start.Options.Webhook instead of serving it by hand, and install the
// configurations webhook.Configurations builds.
func Example() {
	dir, ca := exampleCertificates()
	defer os.RemoveAll(dir)
	log := logrus.New()
	log.SetOutput(os.Stderr)
	server, err := webhook.NewServer(webhook.Options{Addr: "127.0.0.1:0", CertDir: dir, Logger: logrus.NewEntry(log)})
	if err != nil {
		panic(err)
	}
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		panic(err)
	}

	validate, err := webhook.Validating(server, scheme, func(ctx context.Context, old, cm *corev1.ConfigMap) (webhook.Warnings, error) {
		if old != nil && old.Data["owner"] != cm.Data["owner"] {
			return nil, errors.New("data.owner is set once")
		}
		if cm.Data["owner"] == "" {
			return webhook.Warnings{"no owner: nobody will be paged"}, nil
		}
		return nil, nil
	})
	if err != nil {
		panic(err)
	}
	mutate, err := webhook.Mutating(server, scheme, func(ctx context.Context, cm *corev1.ConfigMap) error {
		if cm.Labels == nil {
			cm.Labels = map[string]string{}
		}
		cm.Labels["team"] = "platform"
		return nil
	})
	if err != nil {
		panic(err)
	}

	if err := server.Listen(); err != nil {
		panic(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- server.Serve(ctx) }()
	defer func() { stop(); <-served }()

	ask := exampleClient(ca, "https://"+server.Addr())
	cm := func(owner string) *corev1.ConfigMap {
		return &corev1.ConfigMap{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"}, ObjectMeta: metav1.ObjectMeta{Name: "settings", Namespace: "shop"}, Data: map[string]string{"owner": owner}}
	}
	r := ask(validate.Path, admissionv1.Create, nil, cm(""))
	fmt.Printf("create without owner: allowed %v, warnings %q\n", r.Allowed, r.Warnings)
	r = ask(validate.Path, admissionv1.Update, cm("ann"), cm("bob"))
	fmt.Printf("change of owner: allowed %v, %d %s\n", r.Allowed, r.Result.Code, r.Result.Message)
	r = ask(mutate.Path, admissionv1.Create, nil, cm("ann"))
	fmt.Printf("defaults: %s\n", r.Patch)
	// Output:
	// create without owner: allowed true, warnings ["no owner: nobody will be paged"]
	// change of owner: allowed false, 403 data.owner is set once
	// defaults: [{"op":"add","path":"/metadata/labels","value":{"team":"platform"}}]
}

// exampleCertificates writes a serving certificate for 127.0.0.1 into a
// new folder, as a mounted Secret would hold it.
func exampleCertificates() (string, *certs.CA) {
	ca, err := certs.NewCA("example", time.Hour, time.Now())
	if err != nil {
		panic(err)
	}
	certPEM, keyPEM, err := ca.Issue([]string{"127.0.0.1"}, time.Hour, time.Now())
	if err != nil {
		panic(err)
	}
	dir, err := os.MkdirTemp("", "webhook-example-")
	if err != nil {
		panic(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "tls.crt"), certPEM, 0o600); err != nil {
		panic(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "tls.key"), keyPEM, 0o600); err != nil {
		panic(err)
	}
	return dir, ca
}

// exampleClient sends AdmissionReviews as the apiserver does.
func exampleClient(ca *certs.CA, base string) func(path string, op admissionv1.Operation, old, obj *corev1.ConfigMap) *admissionv1.AdmissionResponse {
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	return func(path string, op admissionv1.Operation, old, obj *corev1.ConfigMap) *admissionv1.AdmissionResponse {
		req := &admissionv1.AdmissionRequest{UID: "1", Kind: metav1.GroupVersionKind{Version: "v1", Kind: "ConfigMap"}, Operation: op, Namespace: obj.Namespace, Name: obj.Name}
		req.Object.Raw, _ = json.Marshal(obj)
		if old != nil {
			req.OldObject.Raw, _ = json.Marshal(old)
		}
		review := admissionv1.AdmissionReview{TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"}, Request: req}
		body, _ := json.Marshal(&review)
		resp, err := client.Post(base+path, "application/json", bytes.NewReader(body))
		if err != nil {
			panic(err)
		}
		defer resp.Body.Close()
		var out admissionv1.AdmissionReview
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
			panic(err)
		}
		return out.Response
	}
}
