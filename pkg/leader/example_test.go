package leader_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"k8s.io/client-go/rest"

	"github.com/rein-k8s/rein/pkg/fence"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/rein-k8s/rein/pkg/leader"
)

// Example shows a controller's main loop: campaign, work under the term's
// context with fenced clients, release on the way out, and go back to
// standby when leadership is lost. It needs a cluster ($KUBECONFIG), so it
// is compiled but not run.
func Example() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	cfg, err := clientcmd.BuildConfigFromFlags("", os.Getenv("KUBECONFIG"))
	if err != nil {
		fmt.Println(err)
		return
	}
	clientset, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		fmt.Println(err)
		return
	}
	base := os.Getenv("POD_NAME") // from the downward API
	if base == "" {
		base, _ = os.Hostname()
	}
	identity, err := leader.NewIdentity(base)
	if err != nil {
		fmt.Println(err)
		return
	}
	elector, err := leader.New(leader.Config{
		Client:    clientset.CoordinationV1(), // not fenced: the elector's own client
		Namespace: "default",
		Name:      "example-controller",
		Identity:  identity,
		// Zero timings mean 15s/10s/2s.
		Registerer: prometheus.NewRegistry(),
	})
	if err != nil {
		fmt.Println(err)
		return
	}

	// Leader-only code gets clients that refuse writes the moment this
	// replica may no longer be the leader: a write whose context carries a
	// term (fence.WithHold) passes while that term is live, and no longer
	// than the fence's deadline.
	fenced := rest.CopyConfig(cfg)
	fenced.Wrap(func(rt http.RoundTripper) http.RoundTripper { return fence.Transport(rt) })
	writer, err := kubernetes.NewForConfig(fenced)
	if err != nil {
		fmt.Println(err)
		return
	}
	http.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		if err := elector.Check(r); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
		}
	})

	for ctx.Err() == nil {
		term, err := elector.Campaign(ctx) // standby: one watch, no polling
		if err != nil {
			fmt.Println(err) // ctx ended
			return
		}
		reconcile(fence.WithHold(term.Context(), term), writer) // returns when the term ends

		// Hand the lease over at once; a standby takes it on the watch
		// event. After a loss this is refused if someone else holds it.
		releaseCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		if err := term.Release(releaseCtx); err != nil {
			fmt.Println(err)
		}
		cancel()
		if err := term.Err(); err != nil {
			fmt.Println("back to standby:", err)
		}
	}
}

// reconcile stands for the controller's work: it runs until ctx ends and
// writes only through writer.
func reconcile(ctx context.Context, writer kubernetes.Interface) {
	_ = writer
	<-ctx.Done()
}
