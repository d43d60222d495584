// Command hypervisor runs the sample's simulated hypervisor (package
// samples/vmcontroller/hypervisor): the stand-in for a real hypervisor
// that the VirtualMachine controller drives, with latency, slow
// transitions and injected failures, so that the sample's multi-replica
// tests and demo can kill controller replicas and restart the hypervisor
// and still check that every VirtualMachine has exactly one VM.
//
// Usage:
//
//	hypervisor --data-dir DIR [--listen 127.0.0.1:8090] [--transition 2s]
//	           [--latency 0] [--error-rate 0] [--seed 0]
//	           [--refuse-images prefix1,prefix2]
//
// Once listening, it prints exactly one line "listening on HOST:PORT" on
// standard output (with --listen 127.0.0.1:0 that is how to learn the
// port); logs go to standard error, one line per VM state change. SIGTERM
// or SIGINT shuts it down gracefully (exit 0). Invalid flags exit 2 with a
// message naming the flag; a failure to start (e.g. a corrupt
// DIR/vms.json) exits 1.
package main
