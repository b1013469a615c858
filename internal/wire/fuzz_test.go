package wire

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"testing"

	"github.com/mlskit/mls/internal/fuzzcorpus"
	"github.com/mlskit/mls/internal/vectors"
)

// fuzzSample is the nested structure FuzzDecoder reads:
//
//	struct {
//	    varint v;                  // a bare variable-length integer
//	    opaque o<V>;
//	    opaque list<V><V>;         // vector of opaque
//	    optional<opaque> opt;
//	} FuzzSample;
type fuzzSample struct {
	v    uint64
	o    []byte
	list [][]byte
	opt  []byte // nil when absent
}

func decodeFuzzSample(b []byte, limit int) (fuzzSample, error) {
	var s fuzzSample
	d := NewDecoder(b)
	d.SetLimit(limit)
	d.Struct("FuzzSample")
	s.v = d.Varint("v")
	s.o = d.Opaque("o")
	d.Vector("list", func(d *Decoder) { s.list = append(s.list, d.Opaque("list[]")) })
	if d.Optional("opt") {
		s.opt = d.Opaque("opt")
	}
	return s, d.Finish()
}

func (s *fuzzSample) encode() ([]byte, error) {
	e := NewEncoder(nil)
	e.Varint(s.v)
	e.Opaque(s.o)
	e.Vector(func(e *Encoder) {
		for _, x := range s.list {
			e.Opaque(x)
		}
	})
	e.Optional(s.opt != nil)
	if s.opt != nil {
		e.Opaque(s.opt)
	}
	return e.Bytes()
}

var sentinels = []error{ErrTruncated, ErrTrailingData, ErrInvalidVarint, ErrTooLarge, ErrInvalidOptional, ErrInvalidValue}

// vectorHeaders returns the vlbytes_header values of deserialization.json.
// A missing vector directory is tolerated (nil) unless CI=true.
func vectorHeaders(tb testing.TB) [][]byte {
	dir, err := vectors.Dir()
	if err != nil {
		tb.Fatal(err)
	}
	raw, err := vectors.Read(dir, "deserialization.json")
	if errors.Is(err, vectors.ErrNotFound) && os.Getenv("CI") != "true" {
		tb.Logf("seeding without vectors: %v", err)
		return nil
	}
	if err != nil {
		tb.Fatal(err)
	}
	var vs []struct {
		Header vectors.Hex `json:"vlbytes_header"`
	}
	if err := json.Unmarshal(raw, &vs); err != nil {
		tb.Fatal(err)
	}
	if len(vs) == 0 {
		tb.Fatal("deserialization.json holds no vectors to seed from")
	}
	var out [][]byte
	for _, v := range vs {
		out = append(out, v.Header)
	}
	return out
}

// fuzzSeeds are the inputs of testdata/fuzz/FuzzDecoder: valid samples
// and inputs that break one rule each.
func fuzzSeeds(tb testing.TB) [][]byte {
	var out [][]byte
	for _, s := range []fuzzSample{
		{},
		{v: 300, o: []byte("abc"), list: [][]byte{[]byte("x"), {}}, opt: []byte{}},
		{v: 1<<30 - 1, o: bytes.Repeat([]byte{7}, 64), list: [][]byte{bytes.Repeat([]byte{1}, 70)}, opt: []byte("opt")},
		{v: 1 << 14, list: [][]byte{{1}, {2}, {3}}},
	} {
		b, err := s.encode()
		if err != nil {
			tb.Fatal(err)
		}
		out = append(out, b)
	}
	return append(out,
		[]byte{0xc0},                   // reserved prefix
		[]byte{0x40, 0x01, 0, 0, 0},    // non-minimal varint
		[]byte{0, 0, 0, 2},             // presence octet 2
		[]byte{0, 0, 2, 0, 0, 0},       // two empty list elements
		[]byte{0, 0, 0, 0, 0xde, 0xad}, // trailing data
		[]byte{0, 0x80, 0, 0x40, 0},    // a length the input cannot back
		[]byte{0, 0x3f},                // truncated opaque
	)
}

// TestGenerateFuzzCorpus writes testdata/fuzz/FuzzDecoder from fuzzSeeds.
// It runs only with MLS_UPDATE_FUZZ_CORPUS=1.
func TestGenerateFuzzCorpus(t *testing.T) {
	if !fuzzcorpus.Updating(t) {
		return
	}
	c := fuzzcorpus.New(".", "FuzzDecoder")
	for _, b := range fuzzSeeds(t) {
		c.Add(b)
	}
	c.Write(t)
}

// FuzzDecoder decodes arbitrary bytes as a FuzzSample. Decoding must never
// panic, must fail only with a *Error wrapping one of the sentinels, and
// whatever decodes must re-encode to exactly the input (the encoding is
// canonical: minimal varints, presence octets 0 or 1). Seeded from
// testdata/fuzz and the vectors' vlbytes headers when present.
func FuzzDecoder(f *testing.F) {
	n := 0
	for _, h := range vectorHeaders(f) {
		// The header as the bare varint of a valid sample ...
		f.Add(append(append([]byte(nil), h...), 0, 0, 0))
		// ... and as the length of o, which the input cannot back.
		f.Add(append(append([]byte{0}, h...), 'a', 'b', 'c'))
		n += 2
	}
	fuzzcorpus.Require(f, n)

	f.Fuzz(func(t *testing.T, in []byte) {
		for _, limit := range []int{MaxVectorLen, 16} {
			s, err := decodeFuzzSample(in, limit)
			if err != nil {
				var we *Error
				if !errors.As(err, &we) {
					t.Fatalf("error %v is a %T, not a *wire.Error", err, err)
				}
				if we.Offset < 0 || we.Offset > len(in) {
					t.Fatalf("offset %d outside an input of %d bytes", we.Offset, len(in))
				}
				known := false
				for _, e := range sentinels {
					known = known || errors.Is(err, e)
				}
				if !known {
					t.Fatalf("error %v wraps no sentinel", err)
				}
				continue
			}
			out, err := s.encode()
			if err != nil {
				t.Fatalf("re-encoding a decoded sample: %v", err)
			}
			if !bytes.Equal(out, in) {
				t.Fatalf("re-encoding differs:\n in %x\nout %x", in, out)
			}
		}
	})
}
