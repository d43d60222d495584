// Package netfault is a TCP proxy for tests that injects the network
// faults a replica meets in production: a cut (every connection closed,
// new ones refused), and a black hole (bytes held, not dropped, as a
// partitioned network does while TCP retransmits, then delivered in order
// when the path comes back). A black hole is what SIGSTOP cannot show: a
// request the process sent before its term ended reaches the server after
// it, even when the sender has exited.
package netfault
