// Command getpidloop is the load of ringwatch's scaling measurement: N
// threads, each pinned to its own CPU, call getpid() as fast as they can
// for a while, then it prints how many calls they made in all. Run
// `ringwatch run --source syscalls --pid <its pid>` beside it to carry every
// one of those system calls, and compare the rates with and without.
//
//	getpidloop --threads 15 --first-cpu 1 --wait 2s --duration 10s
package main
