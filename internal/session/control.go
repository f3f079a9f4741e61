package session

import (
	"errors"

	"github.com/ringwatch/ringwatch/internal/control"
	"github.com/ringwatch/ringwatch/internal/loader"
)

// Control is the user ring's control program and the channel to it, opened
// and closed together.
type Control struct {
	*control.Channel
	kernel *loader.Control
}

// OpenControl loads the control program and opens a channel to it: beside
// s's producers, sharing their settings maps, so that its messages steer
// them; or, with s nil, on its own, where its messages change nothing that
// runs, which is enough to measure the round trip. An error wrapping
// loader.ErrUnsupportedKernel means the kernel lacks the user ring. On
// error nothing stays open.
func OpenControl(s *Session, opts control.Options) (*Control, error) {
	var kernel *loader.Control
	var err error
	if s != nil {
		kernel, err = s.producers.OpenControl(loader.ControlOptions{})
	} else {
		kernel, err = loader.OpenControl(loader.ControlOptions{})
	}
	if err != nil {
		return nil, err
	}
	ch, err := control.Open(kernel, opts)
	if err != nil {
		return nil, errors.Join(err, kernel.Close())
	}
	return &Control{Channel: ch, kernel: kernel}, nil
}

// Close closes the channel, then the control program, which must go before
// the session's producers since it holds their maps. Idempotent.
func (c *Control) Close() error { return errors.Join(c.Channel.Close(), c.kernel.Close()) }
