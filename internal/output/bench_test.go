package output

import (
	"io"
	"strconv"
	"testing"
)

// A batch as large as the consumer's (pkg/consumer's maxBatchRecords),
// and a small one, as an adaptive consumer sees when records trickle.
const benchBatch, smallBatch = 1024, 16

var benchKinds = []struct {
	name string
	rec  func(uint32, uint64) []byte
}{{"syscalls", syscallRecord}, {"exec", execRecord}}

func benchRecords(rec func(uint32, uint64) []byte, n int) [][]byte {
	batch := make([][]byte, n)
	for i := range batch {
		batch[i] = rec(uint32(i%2), uint64(i))
	}
	return batch
}

func reportPerRecord(b *testing.B, records int) {
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*records), "ns/record")
}

// BenchmarkJSONEncode is the encoder's cost per record: a block's records
// to JSON lines, as the encoder goroutine does it, without the write.
func BenchmarkJSONEncode(b *testing.B) {
	for _, kind := range benchKinds {
		b.Run(kind.name, func(b *testing.B) {
			blk := &block{}
			for _, rec := range benchRecords(kind.rec, benchBatch) {
				blk.data = append(blk.data, rec...)
				blk.ends = append(blk.ends, len(blk.data))
			}
			w := &Writer{encode: true}
			w.encodeBlock(blk)
			lineBytes := len(w.out)
			b.SetBytes(int64(len(blk.data)))
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				w.out = w.out[:0]
				w.encodeBlock(blk)
			}
			reportPerRecord(b, benchBatch)
			b.ReportMetric(float64(lineBytes)/benchBatch, "json-bytes/record")
		})
	}
}

// BenchmarkJSONCopy is the consumer's cost per record of handing a batch
// to the Writer: the copy into a block and the channel send, with an
// encoder that only recycles blocks, so that it never stalls the caller.
func BenchmarkJSONCopy(b *testing.B) {
	for _, kind := range benchKinds {
		for _, n := range []int{benchBatch, smallBatch} {
			b.Run(kind.name+"/batch="+strconv.Itoa(n), func(b *testing.B) {
				batch := benchRecords(kind.rec, n)
				w := newWriter(io.Discard, Config{}, false)
				defer w.Close()
				b.ReportAllocs()
				b.ResetTimer()
				for b.Loop() {
					if err := w.Write(batch); err != nil {
						b.Fatal(err)
					}
				}
				reportPerRecord(b, n)
			})
		}
	}
}

// BenchmarkJSONWriter is the whole path, from Write to io.Discard: with the
// encoder on another CPU, its ns/record is the rate one caller can sustain
// (the slower of copying and encoding), and Write stalls when the encoder
// is the slower.
func BenchmarkJSONWriter(b *testing.B) {
	for _, kind := range benchKinds {
		b.Run(kind.name, func(b *testing.B) {
			batch := benchRecords(kind.rec, benchBatch)
			w := NewWriter(io.Discard)
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if err := w.Write(batch); err != nil {
					b.Fatal(err)
				}
			}
			if err := w.Close(); err != nil {
				b.Fatal(err)
			}
			reportPerRecord(b, benchBatch)
			s := w.Stats()
			b.ReportMetric(float64(s.StallTime.Nanoseconds())/float64(b.N*benchBatch), "stall-ns/record")
		})
	}
}
