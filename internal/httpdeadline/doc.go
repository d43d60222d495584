// Package httpdeadline sends an HTTP request with its context cut to a
// deadline that lasts until the response body is closed: what the
// apiserver write guard (pkg/framework) and the external-call guard
// (pkg/leader.GuardHTTP) both do with a fence's deadline.
package httpdeadline
