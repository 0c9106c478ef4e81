# elevate: `make run` starts it, `make test` tests it.
GO      ?= go
BIN     := bin/elevate
PKGS    := ./...
# Packages with concurrency run under the race detector in CI.
RACE_PKGS := ./grants/... ./audit/... ./proxy/... ./telemetry/... ./console/...

.PHONY: build run test test-race e2e browser fuzz bench lint fmt vet clean

build:
	$(GO) build -o $(BIN) ./cmd/elevate

run: build
	$(BIN) serve --dev

# Unit, integration (embedded etcd), Rego and end-to-end tests that need
# only Go. The end-to-end tests in test/ build and run the real binary.
test:
	$(GO) vet $(PKGS)
	$(GO) test -count=1 -timeout 15m $(PKGS)

# The binary under the race detector, through the calls that exercise the
# proxy's concurrent paths (outcome records, tunnels, tracing).
RACE_E2E := TestCallRecords|TestUpstreamDownOutcome|TestTracesAndMetrics|TestCredentialBrokering|TestTour

test-race:
	$(GO) test -count=1 -race -timeout 15m $(RACE_PKGS)
	ELEVATE_TEST_RACE=1 $(GO) test -count=1 -timeout 15m -run '$(RACE_E2E)' ./test/

# Every fuzz target of the module, each for FUZZTIME. New findings are
# written under the package's testdata/fuzz and then run by `make test`.
FUZZTIME ?= 30s
fuzz:
	@set -e; for pkg in $$($(GO) list ./...); do \
		list=$$($(GO) test -list '^Fuzz' $$pkg) || { echo "$$list"; exit 1; }; \
		for target in $$(echo "$$list" | grep '^Fuzz'); do \
			echo "== $$target ($$pkg, $(FUZZTIME))"; \
			$(GO) test -run '^$$' -fuzz "^$$target$$" -fuzztime $(FUZZTIME) $$pkg; \
		done; \
	done

# Tests against real upstream programs installed from Debian packages,
# then the web console's browser tests.
e2e: build
	./test/e2e/install.sh
	$(GO) test -count=1 -tags e2e -timeout 30m ./test/...
	$(MAKE) browser

# The web console in a browser: playwright-core (npm, pinned in
# test/browser/package-lock.json) driving Debian's chromium against
# bin/elevate; screenshots in test/browser/artifacts/.
browser: build
	cd test/browser && npm ci --no-audit --no-fund && npm test

# The comparative performance harness: elevate against the upstream called
# directly, httputil.ReverseProxy and nginx+njs+OPA, plus propagation,
# scale, audit, start-up and the Go benchmarks (docs/performance.md).
# Installs what it needs; BENCH_QUICK=1 for a short run that checks it works.
bench:
	./bench/run.sh

lint: vet
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet $(PKGS)

fmt:
	gofmt -w $$(git ls-files '*.go')

clean:
	rm -rf bin .elevate
