# fcaudit — see README.md.
GO      ?= go
BIN     := bin/fcaudit
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)

.PHONY: build test run fmt vet bench bench-pg bench-seeded bench-replay soak clean

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

## bench-pg: the whole-service run with the PostgreSQL reference handler
## (bench/pgref: stripe-go + pgx INSERT, durable commits) as target
## "postgres": bench/postgres.sh installs PostgreSQL from Debian's packages
## if missing, starts a throwaway cluster on a loopback port, runs
## bench/compare against it and removes it. Never part of `make test`.
BENCH_PG_N      ?= 30000
BENCH_PG_ROUNDS ?= 2
BENCH_PG_POOL   ?= 16
bench-pg: build
	$(GO) build -o bin/refserver ./bench/refserver
	cd bench/pgref && $(GO) build -o ../../bin/pgref .
	bash bench/postgres.sh -fcaudit $(BIN) -refserver bin/refserver -n $(BENCH_PG_N) -rounds $(BENCH_PG_ROUNDS) -c 64 -pg-pool $(BENCH_PG_POOL)

## bench-seeded: ingest into an empty store against a store already holding
## SEED_EVENTS events (seeded with bench/seedstore, read model caught up),
## same run, same load. SEED_DIR keeps the seeded store for the next run
## (≈4.3 GB per million events); by default it is temporary.
SEED_EVENTS  ?= 1000000
SEED_DIR     ?=
SEED_BENCH_N ?= 30000
bench-seeded: build
	$(GO) build -o bin/seedstore ./bench/seedstore
	$(GO) run ./bench/compare -fcaudit $(BIN) -only fcaudit,fcaudit-seeded -seed-events $(SEED_EVENTS) -seedstore bin/seedstore $(if $(SEED_DIR),-seed-dir $(SEED_DIR)) -n $(SEED_BENCH_N) -accounts 20000 -rounds $(BENCH_ROUNDS) -c 64

## bench-replay: `replay` (read the store, sign, per-account order) against a
## plain concurrent net/http client sending the same bodies pre-signed, in
## the same run (replay's BenchmarkReplayHTTP; the ratio is its "ratio").
BENCH_REPLAY_COUNT ?= 3
bench-replay:
	$(GO) test -run='^$$' -bench=BenchmarkReplayHTTP -benchtime=3x -count=$(BENCH_REPLAY_COUNT) ./replay

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
