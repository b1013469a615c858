package keyschedule

import (
	"crypto/subtle"
	"fmt"
	"io"

	"github.com/mlskit/mls/ciphersuite"
)

// secret is the representation shared by the stage types: the suite and
// KDF.Nh bytes.
type secret struct {
	s *ciphersuite.Suite
	b []byte
}

// newSecret copies b after checking that it is KDF.Nh bytes.
func newSecret(s *ciphersuite.Suite, what string, b []byte) (secret, error) {
	if s == nil {
		return secret{}, invalid("%s: nil cipher suite", what)
	}
	if err := checkLen(what, b, s.HashSize()); err != nil {
		return secret{}, err
	}
	return secret{s: s, b: clone(b)}, nil
}

func (x secret) bytes() []byte { return clone(x.b) }

// equal compares in constant time (the lengths are public).
func (x secret) equal(y secret) bool {
	return x.s == y.s && subtle.ConstantTimeCompare(x.b, y.b) == 1
}

func subtleEq(a, b []byte) int { return subtle.ConstantTimeCompare(a, b) }

func (x *secret) erase() {
	clear(x.b)
	x.b = nil
}

func (x secret) sameSuite(what string, y secret) error {
	if x.s != y.s {
		return fmt.Errorf("%w: %s of %v used with %v", ErrSuiteMismatch, what, y.s, x.s)
	}
	return nil
}

func clone(b []byte) []byte {
	if b == nil {
		return nil
	}
	return append(make([]byte, 0, len(b)), b...)
}

func zeros(n int) []byte { return make([]byte, n) }

// redacted is what every secret type prints, whatever the verb.
func redacted(name string) string { return "keyschedule." + name + "{REDACTED}" }

func format(f fmt.State, name string) { io.WriteString(f, redacted(name)) }
