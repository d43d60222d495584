// Command webhooks measures the admission latency of rein's webhook server
// against controller-runtime's, for the same validator, side by side in one
// run. Each server runs in a process of its own (this program in serve
// mode); the bench mode sends them AdmissionReviews as the apiserver does
// (JSON over HTTPS, HTTP/2 when offered, one shared connection pool), in
// interleaved rounds, and writes the medians of the rounds' p50 and p99
// latency and the servers' CPU per request.
//
//	cd bench && go run ./cmd/webhooks --out ../docs/benchmarks.md
package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kruntime "k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
	crwebhook "sigs.k8s.io/controller-runtime/pkg/webhook"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/go-logr/logr"

	"github.com/rein-k8s/rein/bench/internal/common"
	"github.com/rein-k8s/rein/internal/certs"
	"github.com/rein-k8s/rein/pkg/webhook"
)

const (
	path          = "/validate-core-v1-configmap"
	sectionBegin  = "<!-- bench-webhooks:begin -->"
	sectionEnd    = "<!-- bench-webhooks:end -->"
	ownerKey      = "owner"
	maxDataValues = 64
)

var frameworks = []string{"rein", "controller-runtime"}

func main() {
	if len(os.Args) > 1 && os.Args[1] == "serve" {
		serve(os.Args[2:])
		return
	}
	requests := flag.Int("requests", 20000, "requests per framework per round")
	concurrency := flag.Int("concurrency", 8, "requests in flight at once (the apiserver sends a webhook many at once)")
	repeats := flag.Int("repeats", 5, "rounds; the frameworks alternate within each")
	out := flag.String("out", "", "markdown file whose webhooks section is replaced (empty: stdout)")
	profileDir := flag.String("profile-dir", "", "write a CPU profile of each server's run into this folder")
	flag.Parse()
	if err := bench(*requests, *concurrency, *repeats, *out, *profileDir); err != nil {
		fmt.Fprintln(os.Stderr, "webhooks:", err)
		os.Exit(1)
	}
}

// validate is the validator both servers run: an owner is required, and
// no more than maxDataValues entries.
func validate(cm *corev1.ConfigMap) (admission.Warnings, error) {
	if cm.Data[ownerKey] == "" {
		return nil, errors.New("data.owner is required")
	}
	if len(cm.Data) > maxDataValues {
		return admission.Warnings{"many values"}, nil
	}
	return nil, nil
}

// serve runs one framework's webhook server until SIGTERM.
func serve(args []string) {
	fs := flag.NewFlagSet("serve", flag.ExitOnError)
	fw := fs.String("framework", "rein", "rein or controller-runtime")
	port := fs.Int("port", 0, "port on 127.0.0.1")
	certDir := fs.String("cert-dir", "", "tls.crt and tls.key")
	profile := fs.String("cpuprofile", "", "write a CPU profile of the server's whole run here")
	_ = fs.Parse(args)
	if *profile != "" {
		f, err := os.Create(*profile)
		if err != nil {
			panic(err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			panic(err)
		}
		defer func() { pprof.StopCPUProfile(); _ = f.Close() }()
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	scheme := kruntime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		panic(err)
	}
	var err error
	switch *fw {
	case "rein":
		log := logrus.New()
		log.SetLevel(logrus.WarnLevel)
		var s *webhook.Server
		s, err = webhook.NewServer(webhook.Options{Addr: "127.0.0.1:" + strconv.Itoa(*port), CertDir: *certDir, Logger: logrus.NewEntry(log)})
		if err == nil {
			_, err = webhook.Validating(s, scheme, func(ctx context.Context, old, cm *corev1.ConfigMap) (webhook.Warnings, error) {
				if cm == nil {
					return nil, nil
				}
				w, err := validate(cm)
				return webhook.Warnings(w), err
			}, webhook.WithPath(path))
		}
		if err == nil {
			err = s.Start(ctx)
		}
	case "controller-runtime":
		ctrllog.SetLogger(logr.Discard())
		s := crwebhook.NewServer(crwebhook.Options{Host: "127.0.0.1", Port: *port, CertDir: *certDir})
		s.Register(path, admission.WithValidator[*corev1.ConfigMap](scheme, crValidator{}))
		err = s.Start(ctx)
	default:
		err = fmt.Errorf("--framework %q: want rein or controller-runtime", *fw)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "serve:", err)
		os.Exit(1)
	}
}

type crValidator struct{}

func (crValidator) ValidateCreate(_ context.Context, cm *corev1.ConfigMap) (admission.Warnings, error) {
	return validate(cm)
}
func (crValidator) ValidateUpdate(_ context.Context, _, cm *corev1.ConfigMap) (admission.Warnings, error) {
	return validate(cm)
}
func (crValidator) ValidateDelete(context.Context, *corev1.ConfigMap) (admission.Warnings, error) {
	return nil, nil
}

// server is one framework's serving process.
type server struct {
	name string
	cmd  *exec.Cmd
	addr string
}

func (s *server) cpu() time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", s.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+2:]))
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * time.Second / 100 // USER_HZ
}

func bench(requests, concurrency, repeats int, out, profileDir string) error {
	dir, err := os.MkdirTemp("", "rein-bench-webhooks-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	ca, err := certs.NewCA("bench", 24*time.Hour, time.Now())
	if err != nil {
		return err
	}
	certPEM, keyPEM, err := ca.Issue([]string{"127.0.0.1"}, 24*time.Hour, time.Now())
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "tls.crt"), certPEM, 0o600); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "tls.key"), keyPEM, 0o600); err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	servers := map[string]*server{}
	for _, fw := range frameworks {
		port, err := freePort()
		if err != nil {
			return err
		}
		cmd := exec.Command(self, "serve", "--framework", fw, "--port", strconv.Itoa(port), "--cert-dir", dir)
		if profileDir != "" {
			cmd.Args = append(cmd.Args, "--cpuprofile", filepath.Join(profileDir, fw+".cpu"))
		}
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Start(); err != nil {
			return err
		}
		s := &server{name: fw, cmd: cmd, addr: "127.0.0.1:" + strconv.Itoa(port)}
		servers[fw] = s
		defer func() { _ = cmd.Process.Signal(syscall.SIGTERM); _ = cmd.Wait() }()
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	protos := map[string]string{}
	for _, fw := range frameworks {
		p, err := awaitTLS(servers[fw].addr, pool)
		if err != nil {
			return fmt.Errorf("%s: %w", fw, err)
		}
		protos[fw] = p
	}
	body, err := reviewBody()
	if err != nil {
		return err
	}
	type roundResult struct{ p50, p99, cpuPerReq float64 } // µs
	results := map[string][]roundResult{}
	began := time.Now()
	for round := 0; round <= repeats; round++ { // round 0 warms up
		order := slices.Clone(frameworks)
		if round%2 == 1 {
			slices.Reverse(order)
		}
		for _, fw := range order {
			s := servers[fw]
			client := newClient(pool)
			cpu0 := s.cpu()
			lat, err := load(client, "https://"+s.addr+path, body, requests, concurrency)
			cpu := s.cpu() - cpu0
			client.CloseIdleConnections()
			if err != nil {
				return fmt.Errorf("%s: %w", fw, err)
			}
			if round == 0 {
				continue
			}
			r := roundResult{percentile(lat, 0.50), percentile(lat, 0.99), float64(cpu.Microseconds()) / float64(requests)}
			results[fw] = append(results[fw], r)
			fmt.Fprintf(os.Stderr, "round %d %s: p50 %.0f µs, p99 %.0f µs, server CPU %.1f µs/request\n", round, fw, r.p50, r.p99, r.cpuPerReq)
		}
	}
	took := time.Since(began)

	var b strings.Builder
	fmt.Fprintf(&b, "%s\n## Webhooks: admission latency\n\n", sectionBegin)
	fmt.Fprintf(&b, "Written by `bench/cmd/webhooks` on %s in %v. rein's `webhook.Validating` and controller-runtime's\n", time.Now().UTC().Format("2006-01-02"), took.Round(time.Second))
	fmt.Fprintf(&b, "`admission.WithValidator` serve the same validator (a ConfigMap needs `data.owner`), each in a process of its\n")
	fmt.Fprintf(&b, "own on 127.0.0.1 with the same certificate. A client sends them AdmissionReviews of a ConfigMap with 1 KiB of\n")
	fmt.Fprintf(&b, "data as the apiserver does (JSON, HTTPS, %s negotiated), %d at a time, %d per framework per round, %d rounds\n", protoList(protos), concurrency, requests, repeats)
	fmt.Fprintf(&b, "after a warm-up round, the order alternating. Cells: median of the rounds (min–max); latency as the client saw\n")
	fmt.Fprintf(&b, "it, request sent → response read; CPU of the server process.\n\n")
	fmt.Fprintf(&b, "| figure | rein | controller-runtime | rein ÷ controller-runtime |\n|---|---|---|---|\n")
	for _, fig := range []struct {
		name string
		get  func(roundResult) float64
	}{
		{"p50 latency (µs)", func(r roundResult) float64 { return r.p50 }},
		{"p99 latency (µs)", func(r roundResult) float64 { return r.p99 }},
		{"server CPU per request (µs)", func(r roundResult) float64 { return r.cpuPerReq }},
	} {
		cell := func(fw string) (string, float64) {
			var v []float64
			for _, r := range results[fw] {
				v = append(v, fig.get(r))
			}
			slices.Sort(v)
			m := median(v)
			return fmt.Sprintf("%.0f (%.0f–%.0f)", m, v[0], v[len(v)-1]), m
		}
		rc, rm := cell("rein")
		cc, cm := cell("controller-runtime")
		fmt.Fprintf(&b, "| %s | %s | %s | %.2f× |\n", fig.name, rc, cc, rm/cm)
	}
	fmt.Fprintf(&b, "\nMachine: %d CPUs; client and servers share them. Reproduce: `make bench-webhooks`, that is `cd bench && go run ./cmd/webhooks --requests %d --concurrency %d --repeats %d --out ../docs/benchmarks.md`.\n%s\n", runtime.NumCPU(), requests, concurrency, repeats, sectionEnd)
	if out == "" {
		fmt.Print(b.String())
		return nil
	}
	return common.WriteSection(out, b.String(), sectionBegin, sectionEnd)
}

func protoList(p map[string]string) string {
	var parts []string
	for _, fw := range frameworks {
		parts = append(parts, fw+" "+p[fw])
	}
	return strings.Join(parts, ", ")
}

// newClient is an HTTP client as the apiserver's webhook client: TLS with
// the CA bundle, HTTP/2 when the server offers it.
func newClient(pool *x509.CertPool) *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true, MaxIdleConnsPerHost: 100,
	}}
}

func awaitTLS(addr string, pool *x509.CertPool) (string, error) {
	deadline := time.Now().Add(30 * time.Second)
	for {
		conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: pool, NextProtos: []string{"h2", "http/1.1"}})
		if err == nil {
			p := conn.ConnectionState().NegotiatedProtocol
			_ = conn.Close()
			if p == "" {
				p = "http/1.1"
			}
			return p, nil
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("not serving on %s after 30s: %w", addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func reviewBody() ([]byte, error) {
	data := map[string]string{ownerKey: "team-a"}
	for i := range 16 {
		data["k"+strconv.Itoa(i)] = strings.Repeat(strconv.Itoa(i%10), 64)
	}
	cm := &corev1.ConfigMap{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"}, ObjectMeta: metav1.ObjectMeta{Name: "settings", Namespace: "shop", Labels: map[string]string{"app": "shop"}}, Data: data}
	raw, err := json.Marshal(cm)
	if err != nil {
		return nil, err
	}
	review := admissionv1.AdmissionReview{TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"}, Request: &admissionv1.AdmissionRequest{
		UID: "0e6a1ad1-6d3e-4b0c-9b37-5b1c1f3f6a55", Kind: metav1.GroupVersionKind{Version: "v1", Kind: "ConfigMap"},
		Resource: metav1.GroupVersionResource{Version: "v1", Resource: "configmaps"}, Operation: admissionv1.Create,
		Namespace: "shop", Name: "settings", Object: kruntime.RawExtension{Raw: raw},
	}}
	return json.Marshal(&review)
}

// load sends n reviews, c at a time, and returns each latency in µs.
func load(client *http.Client, url string, body []byte, n, c int) ([]float64, error) {
	lat := make([]float64, n)
	next := make(chan int)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	for range c {
		wg.Go(func() {
			for i := range next {
				t0 := time.Now()
				err := post(client, url, body)
				lat[i] = float64(time.Since(t0).Nanoseconds()) / 1000
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
				}
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	return lat, firstErr
}

func post(client *http.Client, url string, body []byte) error {
	resp, err := client.Post(url, "application/json", bytes.NewReader(body))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	var out admissionv1.AdmissionReview
	if err := json.Unmarshal(b, &out); err != nil || out.Response == nil {
		return fmt.Errorf("response %d %q: %v", resp.StatusCode, b, err)
	}
	if !out.Response.Allowed {
		return fmt.Errorf("denied: %+v", out.Response.Result)
	}
	return nil
}

func percentile(v []float64, p float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[min(len(s)-1, int(p*float64(len(s))))]
}

func median(sorted []float64) float64 {
	n := len(sorted)
	if n%2 == 1 {
		return sorted[n/2]
	}
	return (sorted[n/2-1] + sorted[n/2]) / 2
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
