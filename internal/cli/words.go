package cli

import (
	"strings"

	"github.com/ringwatch/ringwatch/internal/abi"
)

// Reword is err as a command prints it: each [abi.OptionError] in it,
// however deep, is written with flags' name for each option it names
// (an option flags lacks keeps its library's name). The result wraps err,
// so errors.Is and errors.As see what they saw; nil stays nil, and an
// error that holds no OptionError is returned as it is.
func Reword(err error, flags map[string]string) error {
	refusals := abi.OptionErrors(err)
	if len(refusals) == 0 {
		return err
	}
	name := func(option string) string {
		if flag, ok := flags[option]; ok {
			return flag
		}
		return option
	}
	msg := err.Error()
	for _, oe := range refusals {
		msg = strings.Replace(msg, oe.Error(), oe.Text(name), 1)
	}
	return &reworded{msg: msg, err: err}
}

type reworded struct {
	msg string
	err error
}

func (r *reworded) Error() string { return r.msg }
func (r *reworded) Unwrap() error { return r.err }
