#!/usr/bin/env bash
# Builds kube-apiserver and etcd from the pinned modules of this folder into
# the directory given as $1 (default: ../../bin). Skips the build when the
# binaries are there and were built from the same pins with the same Go.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
out=${1:-"$here/../../bin"}
mkdir -p "$out"
out=$(cd "$out" && pwd)

# The stamp names everything that decides what the binaries are.
stamp=$(cat "$here/go.mod" "$here/go.sum" "$here/kube-apiserver/main.go" \
	"$here/etcd/main.go" "$here/build.sh" | sha256sum | cut -c1-16)-$(go env GOVERSION)
if [[ -x "$out/kube-apiserver" && -x "$out/etcd" && -f "$out/.testbin-stamp" &&
	"$(cat "$out/.testbin-stamp")" == "$stamp" ]]; then
	echo "testbin: kube-apiserver and etcd in $out are up to date"
	exit 0
fi

k8s_version=$(sed -n 's/^\s*k8s.io\/kubernetes \(v[^ ]*\)$/\1/p' "$here/go.mod")
start=$(date +%s)
cd "$here"
echo "testbin: building etcd and kube-apiserver $k8s_version into $out (a cold build takes a few minutes)"
CGO_ENABLED=0 go build -trimpath -o "$out/etcd" ./etcd
CGO_ENABLED=0 go build -trimpath \
	-ldflags "-X k8s.io/component-base/version.gitVersion=$k8s_version -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$(echo "$k8s_version" | cut -d. -f2)" \
	-o "$out/kube-apiserver" ./kube-apiserver
echo "$stamp" >"$out/.testbin-stamp"
echo "testbin: built in $(($(date +%s) - start))s"
