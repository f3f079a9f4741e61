# ringwatch: see README.md. Every target that loads BPF must run as root.

CLANG ?= clang-19
GO ?= go
BIN := bin/ringwatch
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)
TRACEFS := /sys/kernel/tracing

# bpf2go takes its compiler from the environment (see gen.go).
export BPF2GO_CC := $(CLANG)

GENERATED := internal/abi/ringwatch_bpfel.go internal/abi/ringwatch_bpfel.o \
	internal/abi/control_bpfel.go internal/abi/control_bpfel.o \
	internal/testbpf/testfill_bpfel.go internal/testbpf/testfill_bpfel.o \
	examples/ringreader/counter_bpfel.go examples/ringreader/counter_bpfel.o

.PHONY: all generate vmlinux check-generate build run test soak lint bench tracefs image vmtest clean

all: build

generate:
	$(GO) generate ./...

# vmlinux.h comes from the running kernel's BTF. It is committed: regenerate
# it only to pick up kernel types the programs start to use.
vmlinux:
	bpftool btf dump file /sys/kernel/btf/vmlinux format c > bpf/vmlinux.h

# Regenerates the BPF objects and fails if they differ from what is committed.
check-generate: generate
	@git diff --exit-code --stat -- $(GENERATED) || \
		{ echo "generated BPF objects are stale: run 'make generate' and commit them" >&2; exit 1; }
	@test -z "$$(git status --porcelain --untracked-files=all -- internal/abi internal/testbpf examples/ringreader)" || \
		{ git status --porcelain -- internal/abi internal/testbpf examples/ringreader >&2; echo "untracked generated files in internal/abi, internal/testbpf or examples/ringreader" >&2; exit 1; }

# Without cgo: a binary linked with cgo cannot drop its capabilities after
# attaching (see internal/privilege). GOARCH=arm64 cross-builds (no C
# toolchain needed, since there is no cgo) into bin/ringwatch-linux-arm64.
HOSTARCH := $(shell $(GO) env GOHOSTARCH)
GOARCH ?= $(HOSTARCH)
ifneq ($(GOARCH),$(HOSTARCH))
BIN := bin/ringwatch-linux-$(GOARCH)
endif
build:
	CGO_ENABLED=0 GOOS=linux GOARCH=$(GOARCH) $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/ringwatch

# The exec source attaches to a tracepoint, which needs tracefs mounted.
tracefs:
	@mountpoint -q $(TRACEFS) || mount -t tracefs nodev $(TRACEFS)

# The container image: a static binary (no cgo, so no libc to ship) per
# architecture of IMAGE_ARCHES, in one OCI archive whose index lists an
# image for each platform, written by deploy/image with
# go-containerregistry; no container engine needed. Load it with podman
# load, skopeo copy oci-archive:..., ctr image import or docker load; see
# README, "Deploying". STATIC_BIN is the host's architecture's binary; the
# others are STATIC_BIN-ARCH.
STATIC_BIN ?= bin/ringwatch-static
IMAGE ?= bin/ringwatch-image.tar
IMAGE_ARCHES ?= amd64 arm64
image:
	@mkdir -p $(dir $(STATIC_BIN)) $(dir $(IMAGE))
	@set -e; bins=; for arch in $(IMAGE_ARCHES); do \
		out=$(STATIC_BIN)-$$arch; [ $$arch = $(HOSTARCH) ] && out=$(STATIC_BIN); \
		echo "CGO_ENABLED=0 GOARCH=$$arch $(GO) build -o $$out ./cmd/ringwatch"; \
		CGO_ENABLED=0 GOOS=linux GOARCH=$$arch $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $$out ./cmd/ringwatch; \
		bins=$$bins$${bins:+,}$$out; \
	done; \
	$(GO) run ./deploy/image --binary $$bins --version $(VERSION) --out $(IMAGE)

# Boots Debian's kernels (bookworm's 6.1, trixie's 6.12, sid's newest, and
# bullseye's 5.10; amd64 and arm64) under qemu and runs the root tests
# inside, static, with CI=1: see README, "Tested on". Kernels are fetched
# once into ~/.cache/ringwatch-vm. VMTEST_ARGS='--targets 6.12-amd64-2
# --live' boots one; `go run ./internal/vmtest --list` lists them.
vmtest:
	$(GO) run ./internal/vmtest $(VMTEST_ARGS)

run: build tracefs
	./$(BIN) run $(ARGS)

test: tracefs
	$(GO) test -race -count=1 -p 1 ./...

# The soak and fault suite (internal/soak) for about 10 minutes: every
# transport in turn under a getpid flood on every CPU and exec churn, with
# /metrics scraped 10 times a second, ctl every second and SIGSTOP/SIGCONT
# every 30s; prints a table. As root. `make test` runs a 1-minute version
# when CI is set. SOAK=20m for longer.
SOAK ?= 10m
soak: build tracefs
	RINGWATCH_BIN=$(CURDIR)/$(BIN) RINGWATCH_SOAK=$(SOAK) $(GO) test -count=1 -v -timeout 60m -run 'TestSoak$$' ./internal/soak

# A quick run of every `ringwatch bench` scenario (under 2 minutes), then
# the Go benchmarks of the ring walks alone, on plain memory and on real
# kernel rings beside cilium/ebpf's readers and libbpf's. As root. The
# bench binary is built with -tags libbpf, which adds libbpf's ring_buffer
# (C, through cgo; needs libbpf-dev) as a peer; `make build` stays pure Go.
bench: tracefs
	$(GO) build -tags libbpf -trimpath -ldflags '$(LDFLAGS)' -o bin/ringwatch-libbpf ./cmd/ringwatch
	./bin/ringwatch-libbpf bench --quick
	$(GO) test -run '^$$' -bench 'Drain|Walk' -benchmem -benchtime 5x ./pkg/consumer
	$(GO) test -tags libbpf -run '^$$' -bench 'LibbpfDrain' -benchtime 5x ./internal/bench
	$(GO) test -run '^$$' -bench 'TrackerObserve' -benchmem ./internal/accounting

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); test -z "$$out" || { echo "gofmt needed: $$out" >&2; exit 1; }
	$(GO) vet ./...

clean:
	rm -rf bin
