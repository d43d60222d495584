#!/usr/bin/env bash
# Builds kube-apiserver and etcd into the directory given as $1 (default:
# bin/ at the root of the repository), from the pins in
# internal/testbin/module: the same module, and the same command, that users
# outside the repository run as
# `go run github.com/rein-k8s/rein/cmd/rein-testbin@<version>`.
# rein-testbin writes the module into $1/module and skips the build when the
# binaries are there and were built from the same pins with the same Go (its
# stamp file is $1/.testbin-stamp).
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
out=${1:-"$root/bin"}
mkdir -p "$out"
out=$(cd "$out" && pwd)
cd "$root"
# Progress goes to stderr; stdout is only the folder, which make needs not.
go run ./cmd/rein-testbin --dir "$out" >/dev/null
