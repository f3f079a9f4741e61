package session

import (
	"errors"

	"github.com/ringwatch/ringwatch/internal/control"
	"github.com/ringwatch/ringwatch/internal/loader"
)

// ControlLink is the user ring's control program and the channel to it, opened
// and closed together.
type ControlLink struct {
	*control.Channel
	kernel *loader.ControlProgram
}

// OpenControl loads the control program and opens a channel to it: beside
// s's producers, sharing their settings maps, so that its messages steer
// them; or, with s nil, on its own, where its messages change nothing that
// runs, which is enough to measure the round trip. An error wrapping
// loader.ErrUnsupportedKernel means the kernel lacks the user ring. On
// error nothing stays open.
func OpenControl(s *Session, opts control.Options) (*ControlLink, error) {
	var kernel *loader.ControlProgram
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
	return &ControlLink{Channel: ch, kernel: kernel}, nil
}

// Close closes the channel, then the control program, which must go before
// the session's producers since it holds their maps. Idempotent.
func (c *ControlLink) Close() error { return errors.Join(c.Channel.Close(), c.kernel.Close()) }
