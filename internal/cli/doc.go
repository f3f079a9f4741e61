// Package cli reads what a user types on ringwatch's command line: sizes,
// comma-separated lists, process ids, socket paths. Only the command
// imports it; the libraries take typed values and refuse a bad one with
// an error that names their own option, never a flag (see
// abi.OptionError), so the command alone decides what its flags are
// called. Every error here wraps abi.ErrInvalidOption.
package cli
