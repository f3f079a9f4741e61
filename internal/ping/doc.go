// Package ping measures the round trip user -> kernel -> user through
// ringwatch's user ring, as `ringwatch ping` reports it: it loads the
// kernel's control program on its own, where its messages change nothing
// that runs, sends pings one at a time, checks from the kernel's own
// counts that every one arrived, and reports the percentiles of the round
// trips and how the median splits between the two directions.
package ping
