// Package testbin holds nothing but the pinned versions of the control-plane
// binaries that rein's tests run: kube-apiserver (k8s.io/kubernetes) and etcd
// (go.etcd.io/etcd/server/v3). It is a module of its own so that these large
// dependency graphs never enter rein's go.mod. `make testbin` builds the two
// commands below into bin/.
package testbin
