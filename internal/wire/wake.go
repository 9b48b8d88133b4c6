package wire

// TypeWake is the type of a Wake.
const TypeWake Type = 14

// Wake tells a target of a files push job that its source is making a
// generation after an idle spell: a target that let go of its newest
// index while idle reads it back now, and copies it for the apply, while
// the source reads back its own, rather than after the announcement
// comes (each costs ~100 ms at 100,000 files). It is a hint, never an
// instruction: it changes no tree. A Wake travels alone on a transfer
// stream the source opens; an agent that predates it refuses the
// stream's first frame (an unknown type) and the connection goes on.
type Wake struct {
	Job string `json:"job"`
}

// Type implements Message.
func (*Wake) Type() Type { return TypeWake }

// Validate implements Message.
func (m *Wake) Validate() error { return checkName("job", m.Job) }
