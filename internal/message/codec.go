package message

import "github.com/mlskit/mls/internal/wire"

// Encodable is a structure that can append its encoding.
type Encodable interface {
	Encode(e *wire.Encoder)
}

// Decodable is a structure that can read itself from a decoder; errors are
// recorded in the decoder.
type Decodable interface {
	Decode(d *wire.Decoder)
}

// Marshal returns the encoding of v.
func Marshal(v Encodable) ([]byte, error) {
	var buf []byte
	if h, ok := v.(sizeHinter); ok {
		if n := h.sizeHint(); n >= minHint {
			buf = make([]byte, 0, n)
		}
	}
	e := wire.NewEncoder(buf)
	v.Encode(e)
	return e.Bytes()
}

// MustMarshal returns the encoding of v, which was built by this program;
// it panics only if a vector exceeds 2^30 bytes, which the caps on
// everything this program builds rule out.
func MustMarshal(v Encodable) []byte {
	e := wire.NewEncoder(nil)
	v.Encode(e)
	return e.MustBytes()
}

// Unmarshal decodes all of b into v, rejecting trailing bytes.
func Unmarshal(b []byte, v Decodable) error {
	d := wire.NewDecoder(b)
	v.Decode(d)
	return d.Finish()
}
