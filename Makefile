GO ?= go
FUZZTIME ?= 20s
# Minimizing each new input may take 60 s by default, which ate most of the
# fuzz time (FuzzRead: 100k execs in 20 s instead of 790k).
FUZZMINIMIZE ?= 2s

.PHONY: all build test lint unit fuzz demo bench bench-x11 bench-ab clean

all: build

build:
	$(GO) build -o xvmview ./cmd/xvmview

# What .ci/run calls: lint, every test under the race detector (end-to-end included:
# they need root and the Debian packages from scripts/install-deps.sh), then fuzzing.
test: lint unit fuzz

lint:
	@out=$$(gofmt -l cmd internal profiles bench 2>/dev/null); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	@$(GO) mod tidy -diff >/dev/null || { echo 'go.mod/go.sum are not tidy: run go mod tidy'; $(GO) mod tidy -diff; exit 1; }
	$(GO) vet ./...
	$(GO) tool staticcheck ./...

unit:
	$(GO) test -race -count=1 -timeout 40m ./...

fuzz:
	GO=$(GO) FUZZTIME=$(FUZZTIME) FUZZMINIMIZE=$(FUZZMINIMIZE) bash scripts/fuzz.sh \
		FuzzRead ./internal/xauth \
		FuzzParseNumeric ./internal/xauth \
		FuzzParseDisplay ./internal/xauth \
		FuzzParse ./internal/profile \
		FuzzParseKey ./internal/profile \
		FuzzParseHex ./internal/frame \
		FuzzQuote ./internal/guest \
		FuzzParseStat ./internal/procfs \
		FuzzExecValue ./internal/desktop \
		FuzzLine ./internal/guesttext \
		FuzzWriter ./internal/guesttext \
		FuzzPaste ./internal/guesttext \
		FuzzParse ./internal/memcg

demo: build
	bash scripts/demo.sh

# Both benchmarks need root (they start the test guest) and print their tables.
bench: build
	$(GO) run ./bench/startup

bench-x11:
	$(GO) run ./bench/x11perf -rounds 5

# A change to the X path against a base revision: make bench-ab BASE=main
bench-ab:
	$(GO) run ./bench/ab -base $(BASE)

clean:
	rm -f xvmview
