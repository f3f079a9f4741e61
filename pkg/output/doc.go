// Package output turns records into what `ringwatch run --output` prints:
// one JSON object per record and line ([AppendJSON]), written in buffered
// batches ([Writer]). It decodes records with internal/abi and knows
// nothing of rings or consumers: it is handed each batch's records.
package output
