// Package connhealth gives a rest.Config connections whose death is noticed
// within a bound derived from the lease timings, not client-go's 45 s.
//
// A client talks to the apiserver over one HTTP/2 connection per host.
// When that connection goes dead without a close (a partition that drops
// or holds packets, a NAT that forgot it), nothing tells the client: its
// requests wait, and a watch stays silent. client-go sends an HTTP/2 ping
// after 30 s without a read and closes the connection when the ping is not
// answered within 15 s more (HTTP2_READ_IDLE_TIMEOUT_SECONDS and
// HTTP2_PING_TIMEOUT_SECONDS, read from the environment). A standby whose
// connection died during a partition thus went on waiting on it long
// after the path returned (a 2 s lease standby measured 108 s from the
// end of a 165 s black hole to ready).
//
// Config builds the transport itself, with the ping after RetryPeriod
// without a read and its timeout chosen so that ping + timeout stays
// within the renew deadline: a dead connection is closed, and its
// requests fail and are retried on a new one, before a leader's renew
// deadline passes. The bound is documented in docs/design.md
// ("Connections checked within the renew deadline").
package connhealth
