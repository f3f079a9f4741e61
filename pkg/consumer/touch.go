//go:build !race

package consumer

// touchAhead: the walks touch the lines of a batch ahead of reading them
// (see ringbuf.nextBatch). Off under the race detector: touching reads
// lines a writer in the same process may still be writing (a record still
// busy), which the tests on plain memory do with plain stores, and the
// read is harmless but racy by the letter of Go's memory model.
const touchAhead = true
