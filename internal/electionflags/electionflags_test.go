package electionflags

import (
	"strings"
	"testing"
	"time"
)

func TestCheckTimings(t *testing.T) {
	for _, tc := range []struct {
		lease, renew, retry time.Duration
		want                []string // each a substring of one error, in order
	}{
		{15 * time.Second, 10 * time.Second, 2 * time.Second, nil},
		{-time.Second, 10 * time.Second, -time.Second, []string{LeaseDuration + " is -1s", RetryPeriod + " is -1s"}},
		{10 * time.Second, 10 * time.Second, 2 * time.Second, []string{LeaseDuration + " (10s) must be greater than " + RenewDeadline}},
		{15 * time.Second, 2 * time.Second, 2 * time.Second, []string{RenewDeadline + " (2s) must be greater than 1.2 × " + RetryPeriod}},
	} {
		errs := CheckTimings(tc.lease, tc.renew, tc.retry)
		if len(errs) != len(tc.want) {
			t.Errorf("CheckTimings(%v, %v, %v) = %v, want %d errors", tc.lease, tc.renew, tc.retry, errs, len(tc.want))
			continue
		}
		for i, want := range tc.want {
			if !strings.Contains(errs[i].Error(), want) {
				t.Errorf("CheckTimings(%v, %v, %v)[%d] = %q, want it to say %q", tc.lease, tc.renew, tc.retry, i, errs[i], want)
			}
		}
	}
}
