package start

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

// fakeReviews is a scrapeAuth whose apiserver knows the token "good" (user
// "reader", allowed to get /metrics) and "other" (user "other", not
// allowed), and counts the reviews it answers.
func fakeReviews(t *testing.T) (*scrapeAuth, *atomic.Int32, *time.Time) {
	cs := fake.NewClientset()
	var reviews atomic.Int32
	users := map[string]string{"good": "reader", "other": "other"}
	cs.PrependReactor("create", "tokenreviews", func(a k8stesting.Action) (bool, runtime.Object, error) {
		reviews.Add(1)
		tr := a.(k8stesting.CreateAction).GetObject().(*authenticationv1.TokenReview).DeepCopy()
		if u, ok := users[tr.Spec.Token]; ok {
			tr.Status = authenticationv1.TokenReviewStatus{Authenticated: true, User: authenticationv1.UserInfo{Username: u}}
		}
		return true, tr, nil
	})
	cs.PrependReactor("create", "subjectaccessreviews", func(a k8stesting.Action) (bool, runtime.Object, error) {
		sar := a.(k8stesting.CreateAction).GetObject().(*authorizationv1.SubjectAccessReview).DeepCopy()
		na := sar.Spec.NonResourceAttributes
		sar.Status.Allowed = sar.Spec.User == "reader" && na != nil && na.Path == "/metrics" && na.Verb == "get"
		return true, sar, nil
	})
	log := logrus.New()
	log.SetOutput(io.Discard)
	now := time.Now()
	a := &scrapeAuth{
		tokens: cs.AuthenticationV1().TokenReviews(), reviews: cs.AuthorizationV1().SubjectAccessReviews(),
		log: logrus.NewEntry(log), now: func() time.Time { return now }, cache: map[scrapeKey]scrapeDecision{},
	}
	return a, &reviews, &now
}

// TestScrapeDecisionsAreKept: a decision is kept for its time (a minute
// when allowed, 30 s when forbidden), then reviewed again; the cache
// stays bounded whatever the tokens.
func TestScrapeDecisionsAreKept(t *testing.T) {
	a, reviews, now := fakeReviews(t)
	h := a.wrap(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "metrics") }))
	scrape := func(header string) int {
		req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
		if header != "" {
			req.Header.Set("Authorization", header)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		return w.Code
	}
	for _, c := range []struct {
		header string
		want   int
	}{{"Bearer good", 200}, {"bearer  good ", 200}, {"Bearer other", 403}, {"Bearer bad", 401}, {"", 401}, {"Basic Z29vZA==", 401}, {"Bearer ", 401}} {
		if got := scrape(c.header); got != c.want {
			t.Errorf("Authorization %q: %d, want %d", c.header, got, c.want)
		}
	}
	if n := reviews.Load(); n != 3 {
		t.Fatalf("%d token reviews for three tokens, want 3", n)
	}
	*now = now.Add(scrapeForbiddenTTL)
	scrape("Bearer good")
	scrape("Bearer other")
	if n := reviews.Load(); n != 4 {
		t.Errorf("after 30s: %d token reviews, want 4 (the forbidden token's again)", n)
	}
	*now = now.Add(scrapeAllowedTTL)
	scrape("Bearer good")
	if n := reviews.Load(); n != 5 {
		t.Errorf("after a minute: %d token reviews, want 5 (the allowed token's again)", n)
	}

	for i := range 3 * scrapeCacheSize {
		if _, err := a.decide(context.Background(), fmt.Sprint("made-up-", i), "get", "/metrics"); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(a.cache); n > scrapeCacheSize {
		t.Errorf("%d decisions kept, want at most %d", n, scrapeCacheSize)
	}
}
