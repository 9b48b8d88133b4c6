# pbxsync — see README.md. Every target installs what it needs through Go's
# module proxy; `.ci/run` installs the Debian packages (rsync, PostgreSQL).

GO          ?= go
BIN         := bin/pbxsync
VERSION     := $(shell git describe --always --dirty 2>/dev/null || echo dev)

.PHONY: all build cross test vet staticcheck unit demo demo-script acceptance bench bench-delta bench-scale bench-federation verify-systemd soak chaos fuzz clean deb

all: build

## build: a static binary, as the Debian package builds it (CGO_ENABLED=0: no libc to
## install or to map, 1.3-1.5 MiB less RSS; name lookups are Go's own).
build:
	CGO_ENABLED=0 $(GO) build -ldflags "-X main.version=$(VERSION)" -o $(BIN) ./cmd/pbxsync

## cross: the agent builds for FreeBSD and macOS too (Asterisk runs on FreeBSD;
## a developer may work on a Mac); the tests need Linux. Not part of CI (a
## cold build for both took 2.3 min at load 10 here).
cross:
	GOOS=freebsd $(GO) build -o /dev/null ./cmd/pbxsync
	GOOS=darwin $(GO) build -o /dev/null ./cmd/pbxsync

## test: what CI runs — vet, staticcheck, and every test with the race detector.
test: vet staticcheck unit

vet:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { echo "gofmt needed:"; gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) vet ./...

# staticcheck is pinned in go.mod (a tool directive): `go mod download` brings it and
# `go tool` builds it from the module cache, never from a binary already on the machine.
staticcheck:
	@echo "staticcheck: $$($(GO) list -m -f '{{.Path}}@{{.Version}}' honnef.co/go/tools) ($$($(GO) tool -n staticcheck))"
	$(GO) tool staticcheck ./...

# The timeout only ends a hang: under load (2 cores, several test runs at
# once) the syncer package alone took 14 min with the race detector.
# ./syncer/ first: go test runs packages (-p, 2 here) in the order given,
# and syncer is the longest one (real agents over QUIC, timers, fsync,
# PostgreSQL): listed first it runs from the start on one core while the
# other packages take turns on the other; in path order it started 22 min
# into a 50 min run (load 20). TEST_PARALLEL: parallel tests of a package
# at once, GOMAXPROCS (2) as go's default: at 8 and load 20, four of
# syncer's timing-bound tests failed (inline deltas over their 100 ms
# budget, peer hooks flapping). Timings: docs/performance.md, "CI".
# CHAOS_DURATION: the randomized mesh run (TestMeshChaos, parallel with
# the rest of syncer's tests) takes 60 s here.
# GORACE atexit_sleep_ms=0: a race-enabled binary sleeps 1 s as it exits by
# default; every test binary and every child process a test starts paid it.
unit:
	GORACE="atexit_sleep_ms=0 $$GORACE" CHAOS_DURATION=$(CI_CHAOS_DURATION) $(GO) test -race -count=1 -timeout 40m -parallel $(TEST_PARALLEL) ./syncer/ ./...
CI_CHAOS_DURATION ?= 60s
TEST_PARALLEL ?= 2

## demo: three agents on 127.0.0.1 in a temporary directory; Ctrl-C stops them.
demo: build
	./$(BIN) demo

## demo-script: the scripted demo; exits 0 only when every step converged.
demo-script: build
	./$(BIN) demo --script

## acceptance: the shared acceptance checks (../shared/acceptance) against this checkout;
## ACC="NAME ..." runs only those.
acceptance:
	@test -x ../shared/acceptance/run || { echo "no ../shared/acceptance/run beside this checkout"; exit 1; }
	../shared/acceptance/run $(ACC)

## bench: Go benchmarks (figures, not pass/fail).
bench:
	$(GO) test -run '^$$' -bench . -benchtime 1x ./syncer/
	$(GO) test -run '^$$' -bench . ./internal/store/ ./hostmon/

## bench-delta: bytes moved by pbxsync's deltas vs rsync -z on generated Asterisk data,
## throughput and peak memory (needs rsync; a few minutes). BENCHFLAGS=-quick for a smoke run.
bench-delta:
	$(GO) run ./delta/cmd/deltabench $(BENCHFLAGS)

## bench-scale: pbxsync at scale vs rsync to a loopback daemon, side by side in one run
## (issue 13; docs/performance.md): initial sync of 100 dirs x 1,000 .conf files and of a
## 709 MB mixed tree, RSS, edit latency, restart, store size, wire bytes of dialplan edits
## through a delaying UDP forwarder. Long (tens of minutes); BENCHFLAGS=-quick for a smoke
## run, e.g. BENCHFLAGS='-files 10000' for a middle one, BENCHFLAGS='-files 300000 -dirs 300
## -idle-edits 5' for three times the size and edits that each follow an idle spell.
bench-scale:
	$(GO) run ./internal/benchscale $(BENCHFLAGS)

## bench-federation: real agents in sites joined by a WAN emulator (internal/wanlink, 20 ms
## each way): bytes per change leaving the origin and crossing the WAN with sites configured
## against direct fan-out, far-site change->applied p50/p99, relay failover, 32 targets in
## 4 sites (issue 15; docs/performance.md). A few minutes; BENCHFLAGS=-quick for a smoke run.
bench-federation:
	$(GO) run ./internal/benchfed $(BENCHFLAGS)

## dashboard-screenshot: run the browser test (two agents, headless Chromium) and keep its
## desktop screenshot as docs/dashboard.png, the one the README shows.
.PHONY: dashboard-screenshot
dashboard-screenshot:
	PBXSYNC_TEST_ARTIFACTS=$(CURDIR)/testdata/out $(GO) test -count=1 -run '^TestDashboardInBrowser$$' ./cmd/pbxsync/
	cp testdata/out/dashboard.png docs/dashboard.png

## deb: dist/pbxsync_$(DEB_VERSION)_ARCH.deb for amd64 and arm64 (DEB_ARCHS="amd64" for one)
## with nfpm, pinned in go.mod (go tool nfpm); see docs/packaging.md. DEB_VERSION comes
## from git describe, made valid for Debian (internal/debpkg/version.sh).
DEB_VERSION ?= $(shell internal/debpkg/version.sh)
DEB_ARCHS   ?= amd64 arm64
deb:
	DEB_VERSION=$(DEB_VERSION) GO=$(GO) internal/debpkg/build.sh $(DEB_ARCHS)

## verify-systemd: systemd-analyze verify on examples/systemd/pbxsync.service.
verify-systemd:
	examples/systemd/verify.sh

## soak: the SIGKILL crash test with many more kills (SOAK_ROUNDS, default 1000).
SOAK_ROUNDS ?= 1000
soak:
	PBXSYNC_CRASH_ROUNDS=$(SOAK_ROUNDS) $(GO) test -count=1 -timeout 60m -run 'TestApplierCrashKill' -v ./syncer/ | grep -E '^(---|ok|FAIL)|outcomes'

## chaos: the randomized mesh run: three members in child processes, partitions,
## SIGKILLs and edits everywhere for CHAOS_DURATION (default 10m); it prints its seed,
## CHAOS_SEED=N replays the same actions. Every member must converge, no write lost.
CHAOS_DURATION ?= 10m
chaos:
	CHAOS_DURATION=$(CHAOS_DURATION) $(GO) test -count=1 -timeout 0 -run '^TestMeshChaos$$' -v ./syncer/

## fuzz: every fuzz target for FUZZTIME each (default 30s).
FUZZTIME ?= 30s
fuzz:
	@$(GO) test -list 'Fuzz.*' ./... 2>/dev/null | awk '/^Fuzz/ {n[c++]=$$1} /^ok/ {for (i = 0; i < c; i++) print $$2, n[i]; c = 0}' | \
	while read -r pkg name; do \
		echo "== $$pkg $$name"; \
		$(GO) test -run '^$$' -fuzz "^$$name$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
	done

clean:
	rm -rf bin dist
