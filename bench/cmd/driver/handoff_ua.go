package main

import "strings"

// uaCount sums the requests of one process: its user agent, and the ones
// frameworks derive from it (controller-runtime's elector sends
// "<user agent>/leader-election").
func uaCount(counts map[string]int, ua string) int {
	n := 0
	for k, v := range counts {
		if k == ua || strings.HasPrefix(k, ua+"/") {
			n += v
		}
	}
	return n
}
