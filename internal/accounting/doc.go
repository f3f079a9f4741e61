// Package accounting does the per-record work of `ringwatch run`: for each
// record a consumer hands over, it parses the header (internal/abi), checks
// the record's per-source, per-CPU sequence number, and buckets its
// delivery latency. It is fed batches straight from a consumer's read loop
// (internal/session wires it), one [Shard] per consumer so that no two readers
// share what they write; [Tracker] merges the shards when metrics or the
// summary read it, and [Tracker.Finish] closes the books from the kernel's
// final counts.
package accounting
