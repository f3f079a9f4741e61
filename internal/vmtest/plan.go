package main

import (
	"fmt"
	"path"
	"strings"
	"time"
)

// A target is one boot of the matrix: a Debian kernel, an architecture, a
// CPU count, and the tests to run there.
type target struct {
	name    string // kernel-arch-cpus: 6.12-amd64-2
	suite   string // Debian suite the kernel comes from
	arch    string
	cpus    int
	set     string // which tests: see sets
	ci      bool   // run with CI=1: a skip fails
	cmdline string // extra kernel command line
	limit   time.Duration
	// skip are tests this kernel fails for a reason README gives
	// ("Tested on"), by package: -test.skip patterns.
	skip map[string]string
}

// benchOn6_1 are the tests that load the bench's synthetic producer
// (bpf/ringwatch.c, bench_*) or the test fillers (bpf/testfill.c): both
// loop with the open-coded iterator kfuncs bpf_iter_num_* of Linux 6.4,
// which 6.1 lacks, so they fail to load there ("kfunc bpf_iter_num_new:
// not supported"), and so does `ringwatch bench`. README, "Tested on".
var benchOn6_1 = map[string]string{
	"internal/transport": "TestFitsIsWhatTheKernelHolds",
	"internal/loader":    "TestLazySleeperWokenAtItsWatermark|TestDiscardThenSubmitWakesTheConsumer|TestKernelWakeupsMissASubmitBehindANoWakeupDiscard|TestHeldReservationStopsTheReader|TestSleepHandshakeManyRounds",
	"cmd/ringwatch":      "TestBenchRunsAsACommand|TestScaleBenchManyCPUs",
	"internal/bench":     "TestProducerScenarioRows",
}

// missedOn7 are the tests that require every system call of a child to
// reach the producer: on Debian's 7.x kernels the kernel skips the
// syscalls source's program for some of them (its recursion_misses, which
// ringwatch reports as missed), so they fail there; README, "Tested on",
// says why.
var missedOn7 = map[string]string{
	"internal/loader":  "TestSyscallsWithPIDFilterArriveExactly",
	"internal/session": "TestRunCarriesEveryRecordAndLeavesNothing",
}

// matrix is what `make vmtest` boots, in order. Emulation is slow (TCG on
// 2 host cores), so only one kernel runs every root test the VM can run
// (trixie's 6.12, the kernel of Debian stable); the others run the tests
// that carry records through each transport and the control path, and the
// 16-CPU boots run what needs many CPUs. README, "Tested on", lists this.
var matrix = []target{
	{name: "6.12-amd64-2", suite: "trixie", arch: "amd64", cpus: 2, set: "full", ci: true, limit: 25 * time.Minute},
	{name: "6.1-amd64-2", suite: "bookworm", arch: "amd64", cpus: 2, set: "core", ci: true, limit: 15 * time.Minute, skip: benchOn6_1},
	{name: "7.x-amd64-2", suite: "sid", arch: "amd64", cpus: 2, set: "core", ci: true, limit: 15 * time.Minute, skip: missedOn7},
	{name: "7.x-amd64-16", suite: "sid", arch: "amd64", cpus: 16, set: "many", ci: true, limit: 15 * time.Minute, skip: missedOn7},
	{name: "6.1-amd64-16", suite: "bookworm", arch: "amd64", cpus: 16, set: "many", ci: true, limit: 15 * time.Minute, skip: benchOn6_1},
	{name: "7.x-arm64-2", suite: "sid", arch: "arm64", cpus: 2, set: "core", ci: true, limit: 20 * time.Minute, skip: missedOn7},
	// Bullseye's 5.10 predates the BPF atomics every producer uses
	// (5.12): the tests run without CI so that they skip, and the
	// "old" set checks that each command says so.
	{name: "5.10-amd64-2", suite: "bullseye", arch: "amd64", cpus: 2, set: "old", ci: false, limit: 10 * time.Minute},
}

// A run is one test binary's run in the guest: its package, and which of
// its tests (-test.run and -test.skip patterns; empty: all).
type run struct {
	pkg       string // relative to the module: pkg/consumer
	only      string
	skip      string
	short     bool
	limitMins int
	// cmd, instead of a package's tests, is a command to run in the
	// guest's /, named id.
	cmd []string
	id  string
}

// notInVM are the tests the guest cannot run, and why: they need
// util-linux's setpriv (its --bounding-set and --ambient-caps) and
// systemd-socket-activate, which the initramfs does not have (busybox's
// setpriv lacks those options), so with CI set they would fail for what
// the VM lacks, not for what ringwatch does. The host's `make test` runs
// them.
// TestRunRefusesBadWebSetup's "port taken" case listens on 127.0.0.1:1
// first and expects the next address to be refused as taken; the guest
// refuses port 1 itself ("bind: permission denied", root as it is), which
// the test does not expect. (-test.skip cannot name one subtest beside
// whole tests: its pattern splits at each slash.)
// The public packages' API tests run `go list` and `go doc`, and the guest
// has no Go toolchain; they read only source, which no kernel changes.
var notInVM = map[string]string{
	"cmd/ringwatch": "TestRunAsUserWithAmbientCapabilities|TestRunWithoutHostRings|TestRunRefusesBadWebSetup",
	"pkg/consumer":  apiTests,
	"pkg/userring":  apiTests,
	"pkg/hostrings": apiTests,
}

// apiTests are the tests each public package has of its exported API
// (internal/apicheck).
const apiTests = "TestAPINamesNoInternalType|TestGoDocFitsScreen"

// repoFiles are files outside the tested packages that tests read by a
// path relative to their package (../../README.md), copied to the same
// place under the guest's /src.
var repoFiles = []string{"README.md", "docs/metrics.md", "deploy/web-config.yml"}

// hostOnly are the packages whose tests load BPF but cannot run in the
// guest, and why; the host's `make test` runs them.
var hostOnly = map[string]string{
	"deploy":         "systemd-analyze, promtool and a build of the image",
	"deploy/systemd": "systemd-sysusers, systemd-socket-activate and strace",
	"internal/soak":  "make and a ringwatch binary built by it, for minutes",
}

// sets name the runs of each kind of target.
var sets = map[string][]run{
	// Everything in the packages whose tests load BPF, less notInVM.
	"full": {
		{pkg: "internal/transport"}, {pkg: "pkg/consumer", short: true}, {pkg: "internal/loader", short: true},
		{pkg: "internal/session"}, {pkg: "pkg/userring"}, {pkg: "internal/control"}, {pkg: "internal/metrics"},
		{pkg: "pkg/hostrings"}, {pkg: "internal/progstats"}, {pkg: "internal/bench"}, {pkg: "internal/output"},
		{pkg: "internal/abi"}, {pkg: "internal/testenv"}, {pkg: "internal/privilege"},
		{pkg: "examples/ringreader"}, {pkg: "internal/daemon"}, {pkg: "internal/epoll"}, {pkg: "internal/cpus"},
		{pkg: "internal/hostview"}, {pkg: "cmd/ringwatch", limitMins: 10},
	},
	// Every transport end to end, the sleep handshake, the user ring and
	// the commands on top.
	"core": {
		{pkg: "internal/abi", only: "TestLayoutsMatchBTF|TestSPSCLayoutIsWhatTheConsumerReads"},
		// The flight recorder: live on 6.19 and later (7.x); before, the
		// probe must say absent and the kernel refuse the ring.
		{pkg: "pkg/consumer", only: "TestOverwrite|TestRecorder"},
		// The census of other programs' overwrite-mode rings.
		{pkg: "pkg/hostrings", only: "TestOverwrite"},
		// The producer's cost in an overwrite-mode ring beside the others
		// (`ringwatch bench --scenario producer`): measured on 7.x, "needs
		// Linux 6.19" before.
		{pkg: "internal/bench", only: "TestProducerScenarioRows"},
		{pkg: "internal/transport"},
		{pkg: "internal/loader", short: true},
		{pkg: "internal/session"},
		{pkg: "pkg/userring"},
		{pkg: "internal/control"},
		{pkg: "internal/daemon"},
		{pkg: "cmd/ringwatch", only: "TestRunEndToEnd|TestRunStopsCleanly|TestCtlChangesARunningRun|TestPingCommand|TestBenchRunsAsACommand|TestRecorder"},
	},
	// What only many CPUs have: the default 4 consumers and their groups
	// of rings, --cpus-per-ring, spsc queue groups, each producer waking
	// only its own consumer, and 15 producers on every transport.
	"many": {
		{pkg: "internal/transport"},
		{pkg: "internal/session"},
		{pkg: "cmd/ringwatch", only: "ManyCPUs|TestCPUFlagsFollowTheAffinity|TestRunEndToEnd"},
	},
	// A kernel older than ringwatch needs (5.10: no BPF atomics):
	// ringwatch run must refuse to start, and its message (in the
	// console log) is what README quotes. The test suite is not run
	// there: its probe of the atomics passes on Debian's 5.10 while the
	// producers are refused, so tests fail instead of skipping (README,
	// "Tested on").
	"old": {
		{id: "run-refuses", cmd: []string{"sh", "-c", "! ringwatch run --source syscalls --duration 2s --web.listen-address 127.0.0.1:0"}},
	},
}

// step is one line of the guest's init: a run made concrete.
type step struct {
	id    string
	dir   string
	limit time.Duration
	argv  []string
}

// testBinary is the name of pkg's test binary in the guest.
func testBinary(pkg string) string { return path.Base(pkg) + ".test" }

// steps turns t's set into init's steps.
func steps(t target) []step {
	var out []step
	for _, r := range sets[t.set] {
		if r.cmd != nil {
			out = append(out, step{id: r.id, dir: ".", limit: 2 * time.Minute, argv: r.cmd})
			continue
		}
		limit := 5
		if r.limitMins > 0 {
			limit = r.limitMins
		}
		argv := []string{"/tests/" + testBinary(r.pkg), "-test.v", "-test.count=1", fmt.Sprintf("-test.timeout=%dm", limit)}
		if r.only != "" {
			argv = append(argv, "-test.run="+r.only)
		}
		skip := r.skip
		for _, s := range []string{notInVM[r.pkg], t.skip[r.pkg]} {
			if s != "" {
				skip = strings.Trim(skip+"|"+s, "|")
			}
		}
		if skip != "" {
			argv = append(argv, "-test.skip="+skip)
		}
		if r.short {
			argv = append(argv, "-test.short")
		}
		out = append(out, step{id: r.pkg, dir: r.pkg, limit: time.Duration(limit)*time.Minute + 30*time.Second, argv: argv})
	}
	return out
}
