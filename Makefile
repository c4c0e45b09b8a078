# fcaudit — see README.md.
GO      ?= go
BIN     := bin/fcaudit
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)

.PHONY: build test run fmt vet bench soak clean

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/fcaudit

## stripe-mock, pinned, for backfill's tests: installed by `make test` itself
## into bin/ (named with its version, so a change of pin reinstalls it) and
## handed to the tests in FCAUDIT_STRIPE_MOCK, which makes it required.
STRIPE_MOCK_VERSION := v0.203.0
STRIPE_MOCK         := $(CURDIR)/bin/stripe-mock-$(STRIPE_MOCK_VERSION)

$(STRIPE_MOCK):
	GOBIN=$(CURDIR)/bin/.stripe-mock-install $(GO) install github.com/stripe/stripe-mock@$(STRIPE_MOCK_VERSION)
	mv $(CURDIR)/bin/.stripe-mock-install/stripe-mock $@
	rmdir $(CURDIR)/bin/.stripe-mock-install

## test: everything CI runs — vet, then the whole suite twice: with the race
## detector, and without it (a faster run exposes other interleavings).
test: $(STRIPE_MOCK)
	$(GO) vet ./...
	FCAUDIT_STRIPE_MOCK=$(STRIPE_MOCK) $(GO) test -race -count=1 -timeout 20m ./...
	FCAUDIT_STRIPE_MOCK=$(STRIPE_MOCK) $(GO) test -count=1 -timeout 20m ./...

## run: the service on the embedded store in ./fcaudit-data, with dev credentials.
run: build
	./$(BIN) serve --dev --data-dir ./fcaudit-data

## bench: short Go benchmarks of every package, then the whole-service run:
## loadgen (64 senders) against the verify-only and hand-written reference
## handlers and fcaudit serve, interleaved over rounds, printed as ratios.
## See docs/performance.md. Loopback only; everything stops by itself.
BENCHTIME    ?= 300ms
BENCH_N      ?= 100000
BENCH_ROUNDS ?= 3
bench: build
	$(GO) test -run='^$$' -bench=. -benchmem -benchtime=$(BENCHTIME) ./...
	$(GO) build -o bin/refserver ./bench/refserver
	$(GO) run ./bench/compare -fcaudit $(BIN) -refserver bin/refserver -n $(BENCH_N) -rounds $(BENCH_ROUNDS) -c 64

## soak: the end-to-end crash test (SIGKILL during concurrent ingest, restart,
## every acknowledged event present, chains intact) SOAK_ROUNDS times, then the
## rest of the reliability suite once. `make test` runs 3 rounds. See
## docs/reliability.md.
SOAK_ROUNDS ?= 20
soak:
	FCAUDIT_SOAK_ROUNDS=$(SOAK_ROUNDS) $(GO) test -race -count=1 -timeout 30m -v -run 'TestCrashSafety' ./e2e
	$(GO) test -race -count=1 -timeout 20m ./e2e ./api

fmt:
	gofmt -w $$(git ls-files '*.go')

vet:
	$(GO) vet ./...

clean:
	rm -rf bin
