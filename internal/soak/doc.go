// Package soak drives a built ringwatch binary from outside, as an operator
// would, under load and faults: a system call flood on every CPU, exec
// churn, /metrics scraped ten times a second, `ringwatch ctl` changing the
// pid filter, sampling and pauses every second, the run stopped with
// SIGSTOP and continued, for each transport in turn. It checks the
// accounting identities at every scrape and exactly at the end, that
// memory, file descriptors and goroutines stay flat, that scrapes stay
// fast, and that no BPF object outlives the run.
//
// It uses only what an operator sees: the command line, the exit status,
// stderr, the HTTP endpoint and /proc. `make soak` runs it for about ten
// minutes; with CI set, `make test` runs a one-minute version. The fault
// tests (a second run, tracefs unmounted, the metrics listener failing)
// run in `make test` too.
package soak
