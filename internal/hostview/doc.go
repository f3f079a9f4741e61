// Package hostview is what `ringwatch rings` and `ringwatch top` show of
// every BPF ring and program on the host: the rings' rates and sizing
// advice from pkg/hostrings' census, the programs' from the kernel's run
// statistics, written once as a table or JSON, or refreshed live in a
// terminal with Bubble Tea. The command parses the flags; this package
// holds the census and the statistics only while it shows them.
package hostview
