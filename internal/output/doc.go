// Package output turns records into what `ringwatch run --output` prints:
// one JSON object per record and line ([AppendJSON]), encoded off the
// consumers' threads by a [Writer]. It decodes records with internal/abi
// and knows nothing of rings or consumers: it is handed each batch's
// records.
//
// # Why off the consumer's thread
//
// A consumer's time per record decides whether it keeps up with the
// producers: while it encodes, the ring fills, and a full ring loses
// records. Encoding on the consumer's thread, a record at a time, lost
// 3.5% of one getpid thread's records on 2 CPUs. So a consumer only
// copies: [Writer.Write] copies a batch's records (which alias ring memory
// and die with the callback) into blocks, a memcpy per record, and queues
// the blocks on a channel. One encoder goroutine takes them in order,
// encodes each record with [AppendJSON] and writes large chunks, of
// [Config.ChunkSize], or less when nothing else waits, so a quiet run
// still prints at once.
//
// The encoder is the slower side, and with one producer on 2 CPUs it
// shares a CPU with the consumer, so AppendJSON is written for speed: it
// reads fields in place at the generated types' offsets, makes room for a
// record's numbers once, and writes digits in place (BenchmarkJSONEncode:
// 60-90 ns a syscall record, against 200-360 through abi.Decode and
// strconv; BenchmarkJSONCopy: 10-15 ns to hand one over).
//
//	consumer 0 ─┐  copy batch       ┌───────┐
//	consumer 1 ─┼──────────────────▶│ queue │──▶ encoder ──▶ io.Writer
//	consumer N ─┘  into free block  └───────┘       │  AppendJSON, in chunks
//	     ▲  (wait if none is free)                  │
//	     └──────── free blocks (Config.Blocks) ◀────┘
//
// # Bound and backpressure
//
// The blocks are a fixed pool, [Config.Blocks] of [Config.BlockSize] bytes,
// reused without allocating. When the encoder falls behind and every block
// is queued, Write waits for one: the consumer stalls, the ring takes the
// slack, and if it overflows the kernel drops records and counts them, so
// every loss shows in the producers' counters. The Writer never drops a
// record to keep up, and its memory stays bounded. [Writer.Stats] counts
// the stalls.
//
// # Order
//
// One encoder and one FIFO queue keep the records of each caller in the
// order of its calls, so each ring's records come out in the order they
// were read; batches of concurrent consumers interleave.
//
// # Errors and the end of a run
//
// The first error of the underlying writer (EPIPE once the reader of
// `ringwatch run --output json | head` exits) goes to [Config.OnError],
// which should end the run, and from then on Write returns it at once
// without copying or waiting, and queued blocks are dropped, so no
// consumer blocks on a run that is ending. [Writer.Flush] waits for what
// is queued to be written; [Writer.Close] does that and stops the encoder.
// Both return the first error.
package output
