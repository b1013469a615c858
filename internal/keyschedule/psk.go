package keyschedule

import (
	"fmt"
	"math"

	"github.com/mlskit/mls/ciphersuite"
)

// PSKSecret is psk_secret (RFC 9420, Section 8.4), the combination of the
// pre-shared keys a Commit or Welcome injects into the key schedule.
type PSKSecret struct{ v secret }

// NewPSKSecret wraps a copy of b, which must be KDF.Nh bytes.
func NewPSKSecret(s *ciphersuite.Suite, b []byte) (*PSKSecret, error) {
	v, err := newSecret(s, "psk_secret", b)
	if err != nil {
		return nil, err
	}
	return &PSKSecret{v}, nil
}

// ZeroPSKSecret returns psk_secret_[0], the all-zero vector used when no
// PSK is injected (RFC 9420, Section 8.4).
func ZeroPSKSecret(s *ciphersuite.Suite) *PSKSecret {
	return &PSKSecret{secret{s: s, b: zeros(s.HashSize())}}
}

// Suite returns the secret's cipher suite.
func (x *PSKSecret) Suite() *ciphersuite.Suite { return x.v.s }

// Bytes returns a copy of the secret.
func (x *PSKSecret) Bytes() []byte { return x.v.bytes() }

// Equal reports whether x and y hold the same secret, in constant time.
func (x *PSKSecret) Equal(y *PSKSecret) bool { return x.v.equal(y.v) }

// Erase overwrites the secret; x must not be used afterwards.
func (x *PSKSecret) Erase() { x.v.erase() }

func (x PSKSecret) String() string             { return redacted("PSKSecret") }
func (x PSKSecret) GoString() string           { return x.String() }
func (x PSKSecret) Format(f fmt.State, _ rune) { format(f, "PSKSecret") }

// PSK is one pre-shared key to inject: the encoded PreSharedKeyID that
// names it (RFC 9420, Section 8.4) and its value (the external PSK, or the
// resumption_psk of the named group and epoch). It prints without Secret.
type PSK struct {
	ID     []byte // encoded PreSharedKeyID
	Secret []byte
}

func (p PSK) String() string {
	return fmt.Sprintf("keyschedule.PSK{ID: %x, Secret: REDACTED}", p.ID)
}
func (p PSK) GoString() string           { return p.String() }
func (p PSK) Format(f fmt.State, _ rune) { fmt.Fprint(f, p.String()) }

// DerivePSKSecret combines psks, in the order the Commit or GroupSecrets
// lists them, into psk_secret (RFC 9420, Section 8.4):
//
//	struct { PreSharedKeyID id; uint16 index; uint16 count; } PSKLabel;
//
//	psk_extracted_[i] = KDF.Extract(0, psk_[i])
//	psk_input_[i] = ExpandWithLabel(psk_extracted_[i], "derived psk", PSKLabel, KDF.Nh)
//	psk_secret_[0] = 0
//	psk_secret_[i] = KDF.Extract(psk_input_[i-1], psk_secret_[i-1])
//
// With no PSKs the result is the all-zero vector.
func DerivePSKSecret(s *ciphersuite.Suite, psks []PSK) (*PSKSecret, error) {
	if s == nil {
		return nil, invalid("psk_secret: nil cipher suite")
	}
	if len(psks) > math.MaxUint16 {
		return nil, invalid("psk_secret: %d PSKs, at most %d fit PSKLabel.count", len(psks), math.MaxUint16)
	}
	nh := s.HashSize()
	acc := zeros(nh)
	count := len(psks)
	for i, p := range psks {
		if len(p.ID) == 0 {
			return nil, invalid("psk_secret: PSK %d has an empty PreSharedKeyID", i)
		}
		label := make([]byte, 0, len(p.ID)+4)
		label = append(label, p.ID...)
		label = append(label, byte(i>>8), byte(i), byte(count>>8), byte(count))
		extracted := s.Extract(zeros(nh), p.Secret)
		input := s.ExpandWithLabel(extracted, "derived psk", label, nh)
		next := s.Extract(input, acc)
		clear(extracted)
		clear(input)
		clear(acc)
		acc = next
	}
	return &PSKSecret{secret{s: s, b: acc}}, nil
}
