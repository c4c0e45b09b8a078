# fcaudit — see README.md.
GO      ?= go
BIN     := bin/fcaudit
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)

.PHONY: build test run fmt vet bench soak clean

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/fcaudit

## test: everything CI runs — vet, then the whole suite with the race detector.
test:
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 20m ./...

## run: the service on the embedded store in ./fcaudit-data, with dev credentials.
run: build
	./$(BIN) serve --dev --data-dir ./fcaudit-data

fmt:
	gofmt -w $$(git ls-files '*.go')

vet:
	$(GO) vet ./...

clean:
	rm -rf bin
