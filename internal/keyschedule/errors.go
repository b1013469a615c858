package keyschedule

import (
	"errors"
	"fmt"
)

// Sentinel errors; every error this package returns for bad input wraps one
// of them.
var (
	// ErrInvalidLength: a secret or key of the wrong length.
	ErrInvalidLength = errors.New("keyschedule: wrong length")
	// ErrSuiteMismatch: two values of different cipher suites were
	// combined.
	ErrSuiteMismatch = errors.New("keyschedule: cipher suite mismatch")
	// ErrInvalidArgument: another unusable argument (an empty
	// GroupContext or PreSharedKeyID, an exporter length beyond 255*Nh,
	// more than 65535 PSKs).
	ErrInvalidArgument = errors.New("keyschedule: invalid argument")
	// ErrDeleted: the secret was deleted (RFC 9420, Section 9.2).
	ErrDeleted = errors.New("keyschedule: secret deleted")
)

// LengthError reports a value of the wrong length: which value, its length
// and the length required.
type LengthError struct {
	What      string // e.g. "init_secret"
	Got, Want int
}

func (e *LengthError) Error() string {
	return fmt.Sprintf("keyschedule: %s of %d bytes, want %d", e.What, e.Got, e.Want)
}

// Unwrap returns ErrInvalidLength.
func (e *LengthError) Unwrap() error { return ErrInvalidLength }

func checkLen(what string, b []byte, want int) error {
	if len(b) != want {
		return &LengthError{What: what, Got: len(b), Want: want}
	}
	return nil
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidArgument, fmt.Sprintf(format, args...))
}
