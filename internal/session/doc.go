// Package session is the one lifecycle every ringwatch command runs: open
// the transport and the producers, open the reader of the rings, attach,
// read batches until a context ends, detach, drain, and read the final
// counters. Each batch goes from the reader to the accounting shard of its
// consumer, then to the caller's callback: one way, with nothing shared
// written between readers.
//
// `ringwatch run` reads with ringwatch's consumer and accounting;
// `ringwatch bench` also reads with cilium/ebpf's readers, through the
// same [Reader] interface. [OpenControl] opens the user ring's control
// program and its channel, beside a session's producers or on their own.
package session
