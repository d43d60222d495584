// Package factorytest holds the helpers around pkg/framework that the
// tests and examples of several packages share: the resources they use, a
// scheme of given API packages, a factory's caches started and synced
// (SyncCaches) or caches and workers run for the length of a test (Run) or
// of an example (Start), and the CronJob-owns-Jobs index that the index
// tests of pkg/generic and of its fake both use.
//
// It is for the external (_test) packages only: it imports pkg/framework,
// so pkg/framework's own in-package tests cannot use it (they use
// internal/testkit).
package factorytest
