# rein — build, test and run. `make help` lists the targets.

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

GO          ?= go
BIN         := $(CURDIR)/bin
TOOLS       := $(BIN)/tools
# Pinned tool versions: bump here, nowhere else.
STATICCHECK_VERSION := v0.8.2
# Bound every test run: CI has 90 minutes in all, and a hung test must fail,
# not eat them. A package's bound, not the run's: codegen took 890–921 s with
# both cores busy (hack/test-under-load.sh), and went past 20 minutes
# when more ran beside it.
TEST_TIMEOUT ?= 30m
# The budget of exported names in pkg/ (make api-surface).
API_MAX ?= 423

export REIN_TESTBIN := $(BIN)

.PHONY: help
help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

.PHONY: build
build: ## compile every package and command
	$(GO) build ./...

.PHONY: testbin
testbin: ## build kube-apiserver and etcd from pinned Go modules into bin/ (only when missing or stale)
	bash hack/testbin/build.sh $(BIN)

.PHONY: test
test: testbin verify check-files api-surface ## unit, integration and e2e tests with -race against a real apiserver
	$(GO) test -race -count=1 -timeout $(TEST_TIMEOUT) ./...

.PHONY: lint
lint: $(TOOLS)/staticcheck ## gofmt, go vet and staticcheck (also of the bench/ module)
	@unformatted=$$(gofmt -l $$(git ls-files --cached --others --exclude-standard '*.go')); \
	if [ -n "$$unformatted" ]; then echo "gofmt would change:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...
	@# code-generator's output (pkg/generated) is upstream's to keep current.
	$(TOOLS)/staticcheck $$($(GO) list ./... | grep -v /pkg/generated/)
	cd bench && $(GO) vet ./... && $(TOOLS)/staticcheck ./...

$(TOOLS)/staticcheck: Makefile
	GOBIN=$(TOOLS) $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)
	@touch $@

.PHONY: bench
bench: testbin ## rein vs wrangler vs controller-runtime on one apiserver (bench/: 5 rounds, 5000 objects), the queue microbenchmarks and bench-codegen; rewrites docs/benchmarks.md' side-by-side section (about 25 minutes on 2 cores, 7 of them bench-codegen)
	$(GO) test -run '^$$' -bench 'BenchmarkQueue' -benchmem -count 6 ./internal/engine
	cd bench && $(GO) run ./cmd/driver --repeats 5 --objects 5000 --bindir $(BIN) --out ../docs/benchmarks.md
	$(MAKE) bench-codegen

.PHONY: bench-children
bench-children: testbin ## rein vs wrangler generating handlers (bench/ --scenarios children: 1000 Deployments × 3 children, converge then a restarted process's resync, 5 rounds); rewrites docs/benchmarks.md' children section (about 6 minutes)
	cd bench && $(GO) run ./cmd/driver --scenarios children --repeats 5 --objects 1000 --bindir $(BIN) --out ../docs/benchmarks.md

.PHONY: bench-shards
bench-shards: testbin ## rein sharded over 1, 3 and 5 replicas vs a fixed split with no protocol (the ceiling), one leader and the peers (bench/ --scenarios sharded: 5000 ConfigMaps, 2 workers per process, a handler that waits 20ms, and without; idle load, handoff, takeover; 5 rounds); rewrites docs/benchmarks.md' sharded section (about 50 minutes on 2 cores)
	cd bench && $(GO) run ./cmd/driver --scenarios sharded --repeats 5 --objects 5000 --workers 2 --delay 20ms --bindir $(BIN) --out ../docs/benchmarks.md

.PHONY: bench-scale
bench-scale: testbin ## rein (default, drop-data transform, metadata-only) vs wrangler, controller-runtime and a bare client-go writer at 100,000 ConfigMaps of 1 KiB (bench/ --scenarios scale: sync, peak RSS, objects/s, SIGKILL takeover with a full cache; 3 rounds); rewrites docs/benchmarks.md' scale section (about 3 hours on 2 cores, a round taking 49–58 minutes; creating the objects takes 2–4 minutes of it; SCALE_STATE=FILE keeps complete rounds in FILE and goes on from them when started again)
	cd bench && $(GO) run ./cmd/driver --scenarios scale --objects 100000 --repeats 3 --bindir $(BIN) --out ../docs/benchmarks.md $(if $(SCALE_STATE),--scale-state $(abspath $(SCALE_STATE)))

.PHONY: bench-partition
bench-partition: testbin ## rein's sharded group with full caches vs partitioned caches (--partition-caches, the apiserver's ShardedListAndWatch) and warm-next, against the floor (bare client-go writers, each with a fixed fifth of the UID hash) at 100,000 ConfigMaps of 1 KiB, 5 replicas, 20 shards (bench/ --scenarios partition: start → all reconciled with each replica's CPU and peak RSS, CPU with no changes and under 100 changes/s for 30s, a SIGKILLed replica's shards taken over; 2 rounds); rewrites docs/benchmarks.md' partition section (41 minutes on 2 cores, measured; creating the objects takes 2 of them)
	cd bench && $(GO) run ./cmd/driver --scenarios partition --objects 100000 --repeats 2 --partition-variants full,partitioned,warm-next,floor --bindir $(BIN) --out ../docs/benchmarks.md

.PHONY: bench-fresh
bench-fresh: testbin ## a new leader's first pass over 100,000 ConfigMaps after a SIGKILL, 100 changes made at random moments during it: change → handler call p50/p99 and the pass's length for rein before the priority queue (850532c, which the driver builds from git archive) and now, and controller-runtime with UsePriorityQueue on and off (bench/ --scenarios fresh: a handler that waits 2ms and writes nothing, 5 workers, 3 rounds); rewrites docs/benchmarks.md' fresh section (about 35 minutes on 2 cores, 4 of them creating the objects)
	cd bench && $(GO) run ./cmd/driver --scenarios fresh --frameworks rein,controller-runtime --objects 100000 --repeats 3 --bindir $(BIN) --out ../docs/benchmarks.md

.PHONY: bench-webhooks
bench-webhooks: ## rein's webhook server vs controller-runtime's, same validator, separate processes (bench/cmd/webhooks: 20000 AdmissionReviews per framework per round, 8 in flight, 5 rounds): p50/p99 latency and server CPU; rewrites docs/benchmarks.md' webhooks section (about 2 minutes)
	cd bench && $(GO) run ./cmd/webhooks --requests 20000 --concurrency 8 --repeats 5 --out ../docs/benchmarks.md

.PHONY: bench-tracing
bench-tracing: testbin ## rein's throughput run with OpenTelemetry tracing off, at sampling 1.0 and at parent-based 0.01 (bench/ --scenarios tracing: 5000 ConfigMaps, 9 rounds, spans to a receiver in the driver): throughput, controller CPU and RSS; rewrites docs/benchmarks.md' tracing section (about 15 minutes on 2 cores)
	cd bench && $(GO) run ./cmd/driver --scenarios tracing --repeats 9 --objects 5000 --bindir $(BIN) --out ../docs/benchmarks.md

.PHONY: bench-rein
bench-rein: testbin ## rein alone: end-to-end reconcile with 5 and 20 workers, then bench-election (about 10 minutes)
	$(GO) test -run '^$$' -bench 'BenchmarkReconcile' -benchtime 5x -timeout 30m ./internal/engine
	$(MAKE) bench-election

.PHONY: bench-election
bench-election: testbin ## failover figures with lease 15s/renew 10s/retry 2s, 5000 objects, 5 rounds
	$(GO) test -run '^$$' -bench 'BenchmarkElection' -benchtime 1x -timeout 30m ./test/e2e

.PHONY: bench-codegen
bench-codegen: ## rein-gen (first run, reruns, after a change) against code-generator's four commands + controller-gen as separate commands, one 3-group API, 5 interleaved rounds (about 7 minutes)
	$(GO) test -run '^$$' -bench 'BenchmarkCodegen' -benchtime 1x -timeout 60m ./codegen -codegen-rounds 5

# What `make generate` writes, and from what.
SAMPLE_API := ./samples/vmcontroller/api/vm/...
SAMPLE_OUT := github.com/rein-k8s/rein/samples/vmcontroller/pkg/generated
GENERATED  := pkg/controllers samples/vmcontroller/pkg/generated samples/vmcontroller/api samples/vmcontroller/deploy/crd samples/vmcontroller/deploy/webhook samples/vmcontroller/deploy/rbac.yaml

.PHONY: generate
generate: ## regenerate the built-in controllers and the sample's code, CRD, webhook configurations and RBAC (vmcontroller --print-rbac)
	$(GO) run ./codegen/internal/builtins
	$(GO) run ./codegen/cmd/rein-gen --output-package $(SAMPLE_OUT) --crd-dir samples/vmcontroller/deploy/crd \
		--webhook-dir samples/vmcontroller/deploy/webhook --webhook-service vm-system/vmcontroller-webhook $(SAMPLE_API)
	@# The sample's RBAC, from the code: vmcontroller --print-rbac with deploy/deployment.yaml's arguments.
	$(GO) run ./samples/vmcontroller/internal/rbacgen

.PHONY: verify
verify: ## regenerate into a copy of the tree and fail with a diff when committed code is stale
	@tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	git ls-files --cached --others --exclude-standard -z | tar --null -T - -cf - | tar -xf - -C "$$tmp"; \
	$(MAKE) -s -C "$$tmp" generate >/dev/null; \
	status=0; for d in $(GENERATED); do diff -ru "$$d" "$$tmp/$$d" || status=1; done; \
	if [ $$status -ne 0 ]; then echo "verify: generated code is stale: run 'make generate' and commit the result"; exit 1; fi; \
	echo "verify: generated code is current"

.PHONY: check-files
check-files: ## fail when git tracks a file over 1 MB (build output belongs in .gitignore, not in git)
	@big=$$(git ls-files -z | xargs -0 du -k 2>/dev/null | awk '$$1 > 1024 {print $$2}'); \
	if [ -n "$$big" ]; then echo "check-files: tracked files over 1 MB (remove them and ignore the path):"; echo "$$big"; exit 1; fi

.PHONY: api-surface
api-surface: ## count the exported names of pkg/ (hand-written code) and list names exported by two packages; fails above API_MAX
	$(GO) run ./hack/apisurface -max $(API_MAX)

.PHONY: demo
demo: testbin ## run the sample: local control plane, hypervisor, 3 replicas, a leader killed on purpose
	$(GO) run ./samples/vmcontroller/cmd/demo

.PHONY: demo-shards
demo-shards: testbin ## run the sample sharded (--shards 8): every replica works; shards move as a replica joins, stops and is killed
	$(GO) run ./samples/vmcontroller/cmd/demo --shards 8

.PHONY: clean
clean: ## remove bin/ (the next test run rebuilds kube-apiserver and etcd)
	rm -rf $(BIN)
