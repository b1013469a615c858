package wire

import (
	"bytes"
	"encoding/hex"
	"errors"
	"runtime"
	"strings"
	"testing"
)

// unhex decodes a hex literal written in the test, ignoring spaces.
func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatalf("bad hex literal %q: %v", s, err)
	}
	return b
}

func mustBytes(t testing.TB, e *Encoder) []byte {
	t.Helper()
	b, err := e.Bytes()
	if err != nil {
		t.Fatalf("encoder error: %v", err)
	}
	return b
}

// wireErr returns err as a *Error or fails the test.
func wireErr(t testing.TB, err error) *Error {
	t.Helper()
	var we *Error
	if !errors.As(err, &we) {
		t.Fatalf("error %v (%T) is not a *wire.Error", err, err)
	}
	return we
}

func TestFixedWidthIntegersRoundTrip(t *testing.T) {
	e := NewEncoder(nil)
	e.U8(0xab)
	e.U16(0x1234)
	e.U32(0x89abcdef)
	e.U64(0x0102030405060708)
	e.Bool(true)
	e.Bool(false)
	got := mustBytes(t, e)
	want := unhex(t, "ab 1234 89abcdef 0102030405060708 01 00")
	if !bytes.Equal(got, want) {
		t.Fatalf("encoding: got %x, want %x", got, want)
	}
	if e.Len() != len(want) {
		t.Errorf("Len: got %d, want %d", e.Len(), len(want))
	}

	d := NewDecoder(want)
	if v := d.U8("a"); v != 0xab {
		t.Errorf("U8: got %#x", v)
	}
	if v := d.U16("b"); v != 0x1234 {
		t.Errorf("U16: got %#x", v)
	}
	if v := d.U32("c"); v != 0x89abcdef {
		t.Errorf("U32: got %#x", v)
	}
	if v := d.U64("d"); v != 0x0102030405060708 {
		t.Errorf("U64: got %#x", v)
	}
	if v := d.Bool("e"); !v {
		t.Error("Bool: got false, want true")
	}
	if v := d.Bool("f"); v {
		t.Error("Bool: got true, want false")
	}
	if err := d.Finish(); err != nil {
		t.Fatal(err)
	}
}

func TestEncoderAppendsToGivenBuffer(t *testing.T) {
	prefix := []byte{0xff, 0xfe}
	e := NewEncoder(prefix)
	e.U8(7)
	e.Opaque([]byte("hi"))
	got := mustBytes(t, e)
	want := unhex(t, "fffe 07 02 6869")
	if !bytes.Equal(got, want) {
		t.Fatalf("got %x, want %x", got, want)
	}
	var zero Encoder // the zero value is ready to use
	zero.U16(0x0102)
	if b := mustBytes(t, &zero); !bytes.Equal(b, []byte{1, 2}) {
		t.Fatalf("zero Encoder: got %x", b)
	}
}

func TestBoolRejectsOtherOctets(t *testing.T) {
	for _, b := range []byte{2, 0x80, 0xff} {
		d := NewDecoder([]byte{b})
		d.Struct("S")
		d.Bool("flag")
		err := d.Err()
		if !errors.Is(err, ErrInvalidValue) {
			t.Fatalf("octet %#x: got %v, want ErrInvalidValue", b, err)
		}
		if we := wireErr(t, err); we.Struct != "S" || we.Field != "flag" || we.Offset != 0 {
			t.Errorf("octet %#x: error location %+v", b, we)
		}
	}
}

// Encodings of RFC 9420, Section 2.1.2, worked out by hand from the table of
// prefixes (00: 6 bits, 01: 14 bits, 10: 30 bits) and from its examples.
var varintCases = []struct {
	v   uint64
	enc string
}{
	{0, "00"},
	{1, "01"},
	{37, "25"}, // RFC example
	{63, "3f"},
	{64, "4040"},
	{255, "40ff"},
	{15293, "7bbd"}, // RFC example
	{16383, "7fff"},
	{16384, "80004000"},
	{494878333, "9d7f3e7d"}, // RFC example
	{1<<30 - 1, "bfffffff"},
}

func TestVarintRoundTrip(t *testing.T) {
	for _, c := range varintCases {
		want := unhex(t, c.enc)

		e := NewEncoder(nil)
		e.Varint(c.v)
		if got := mustBytes(t, e); !bytes.Equal(got, want) {
			t.Errorf("Varint(%d): got %x, want %x", c.v, got, want)
		}
		if got := AppendVarint([]byte{0xee}, c.v); !bytes.Equal(got, append([]byte{0xee}, want...)) {
			t.Errorf("AppendVarint(%d): got %x", c.v, got)
		}

		v, n, err := ParseVarint(append(append([]byte(nil), want...), 0xaa, 0xbb))
		if err != nil || v != c.v || n != len(want) {
			t.Errorf("ParseVarint(%x): got (%d, %d, %v), want (%d, %d, nil)", want, v, n, err, c.v, len(want))
		}

		d := NewDecoder(want)
		if got := d.Varint("n"); got != c.v {
			t.Errorf("Decoder.Varint(%x): got %d", want, got)
		}
		if err := d.Finish(); err != nil {
			t.Errorf("Decoder.Varint(%x): %v", want, err)
		}
	}
}

func TestVarintRejectsNonMinimal(t *testing.T) {
	for _, enc := range []string{
		"4000",     // 0 in two bytes
		"403f",     // 63 in two bytes
		"80000000", // 0 in four bytes
		"8000003f", // 63 in four bytes
		"80003fff", // 16383 in four bytes
	} {
		b := unhex(t, enc)
		if _, _, err := ParseVarint(b); !errors.Is(err, ErrInvalidVarint) {
			t.Errorf("ParseVarint(%s): got %v, want ErrInvalidVarint", enc, err)
		}
		d := NewDecoder(b)
		d.Struct("T")
		d.Varint("len")
		err := d.Err()
		if !errors.Is(err, ErrInvalidVarint) {
			t.Errorf("Decoder.Varint(%s): got %v, want ErrInvalidVarint", enc, err)
			continue
		}
		if we := wireErr(t, err); we.Field != "len" || we.Offset != 0 {
			t.Errorf("Decoder.Varint(%s): error location %+v", enc, we)
		}
	}
}

func TestVarintRejectsPrefix11(t *testing.T) {
	for _, enc := range []string{"c0", "c0000000", "ff", "ffffffffffffffff"} {
		b := unhex(t, enc)
		if _, _, err := ParseVarint(b); !errors.Is(err, ErrInvalidVarint) {
			t.Errorf("ParseVarint(%s): got %v, want ErrInvalidVarint", enc, err)
		}
		d := NewDecoder(b)
		d.Opaque("data")
		if err := d.Err(); !errors.Is(err, ErrInvalidVarint) {
			t.Errorf("Opaque(%s): got %v, want ErrInvalidVarint", enc, err)
		}
	}
}

func TestVarintTruncated(t *testing.T) {
	for _, enc := range []string{"", "40", "80", "8000", "800040"} {
		b := unhex(t, enc)
		if _, _, err := ParseVarint(b); !errors.Is(err, ErrTruncated) {
			t.Errorf("ParseVarint(%q): got %v, want ErrTruncated", enc, err)
		}
	}
}

func TestVarintEncodeOutOfRange(t *testing.T) {
	e := NewEncoder(nil)
	e.Varint(1 << 30)
	if _, err := e.Bytes(); err == nil {
		t.Fatal("Varint(2^30): no error")
	}
	defer func() {
		if recover() == nil {
			t.Fatal("MustBytes did not panic on an encoder error")
		}
	}()
	e.MustBytes()
}

func TestOpaqueRoundTrip(t *testing.T) {
	for _, n := range []int{0, 1, 63, 64, 16383, 16384, 70000} {
		content := make([]byte, n)
		for i := range content {
			content[i] = byte(i*7 + 1)
		}
		e := NewEncoder(nil)
		e.Opaque(content)
		enc := mustBytes(t, e)

		// Header width from the table in RFC 9420, Section 2.1.2.
		hdr := 1
		switch {
		case n > 16383:
			hdr = 4
		case n > 63:
			hdr = 2
		}
		if len(enc) != hdr+n {
			t.Fatalf("opaque of %d bytes: encoding is %d bytes, want %d", n, len(enc), hdr+n)
		}
		if !bytes.Equal(enc[hdr:], content) {
			t.Fatalf("opaque of %d bytes: content not copied verbatim", n)
		}

		d := NewDecoder(enc)
		got := d.Opaque("data")
		if err := d.Finish(); err != nil {
			t.Fatalf("opaque of %d bytes: %v", n, err)
		}
		if got == nil {
			t.Fatalf("opaque of %d bytes: decoded nil", n)
		}
		if !bytes.Equal(got, content) {
			t.Fatalf("opaque of %d bytes: round trip differs", n)
		}
	}
}

func TestOpaqueReturnsCopy(t *testing.T) {
	in := []byte{3, 'a', 'b', 'c'}
	d := NewDecoder(in)
	got := d.Opaque("x")
	in[1] = 'z'
	if string(got) != "abc" {
		t.Fatalf("decoded value aliases the input: %q", got)
	}
	in = []byte{0x61, 0x62, 0x63, 0x64}
	d = NewDecoder(in)
	fixed := d.Fixed("f", 2)
	rest := d.Rest()
	in[0], in[3] = 0, 0
	if string(fixed) != "ab" || string(rest) != "cd" {
		t.Fatalf("Fixed/Rest alias the input: %q %q", fixed, rest)
	}
}

func TestOpaqueMax(t *testing.T) {
	enc := []byte{3, 1, 2, 3}
	d := NewDecoder(enc)
	if got := d.OpaqueMax("k", 3); len(got) != 3 || d.Finish() != nil {
		t.Fatalf("OpaqueMax at the limit: %x, %v", got, d.Err())
	}
	d = NewDecoder(enc)
	d.Struct("Key")
	if got := d.OpaqueMax("k", 2); got != nil {
		t.Errorf("OpaqueMax over the limit returned %x", got)
	}
	err := d.Err()
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("OpaqueMax over the limit: got %v, want ErrTooLarge", err)
	}
	if we := wireErr(t, err); we.Struct != "Key" || we.Field != "k" || we.Offset != 0 {
		t.Errorf("error location %+v", we)
	}
}

func TestFixedSkipRestPeek(t *testing.T) {
	d := NewDecoder([]byte{1, 2, 3, 4, 5, 6})
	if got := d.Fixed("f", 2); !bytes.Equal(got, []byte{1, 2}) {
		t.Fatalf("Fixed: %x", got)
	}
	d.Skip("s", 1)
	if d.Len() != 3 {
		t.Fatalf("Len after Fixed+Skip: %d, want 3", d.Len())
	}
	if p := d.Peek(); !bytes.Equal(p, []byte{4, 5, 6}) {
		t.Fatalf("Peek: %x", p)
	}
	if d.Len() != 3 {
		t.Fatal("Peek consumed input")
	}
	if r := d.Rest(); !bytes.Equal(r, []byte{4, 5, 6}) {
		t.Fatalf("Rest: %x", r)
	}
	if !d.Empty() || d.Finish() != nil {
		t.Fatalf("after Rest: Empty=%v Finish=%v", d.Empty(), d.Finish())
	}

	d = NewDecoder([]byte{1, 2})
	if got := d.Fixed("f", 3); got != nil || !errors.Is(d.Err(), ErrTruncated) {
		t.Fatalf("Fixed past the end: %x, %v", got, d.Err())
	}
	d = NewDecoder([]byte{1, 2})
	if got := d.Fixed("f", -1); got != nil || !errors.Is(d.Err(), ErrInvalidValue) {
		t.Fatalf("Fixed(-1): %x, %v", got, d.Err())
	}
	d = NewDecoder([]byte{1, 2})
	d.Skip("s", 3)
	if !errors.Is(d.Err(), ErrTruncated) {
		t.Fatalf("Skip past the end: %v", d.Err())
	}
}

func TestOptional(t *testing.T) {
	e := NewEncoder(nil)
	e.Optional(true)
	e.U16(0xbeef)
	e.Optional(false)
	enc := mustBytes(t, e)
	if want := unhex(t, "01 beef 00"); !bytes.Equal(enc, want) {
		t.Fatalf("encoding: got %x, want %x", enc, want)
	}
	d := NewDecoder(enc)
	if !d.Optional("a") {
		t.Fatal("present value reported absent")
	}
	if v := d.U16("a.value"); v != 0xbeef {
		t.Fatalf("value: %#x", v)
	}
	if d.Optional("b") {
		t.Fatal("absent value reported present")
	}
	if err := d.Finish(); err != nil {
		t.Fatal(err)
	}

	for _, b := range []byte{2, 0x80, 0xff} {
		d := NewDecoder([]byte{0x00, b, 0x00})
		d.Struct("Holder")
		d.U8("pad")
		if d.Optional("maybe") {
			t.Errorf("presence octet %#x reported present", b)
		}
		err := d.Err()
		if !errors.Is(err, ErrInvalidOptional) {
			t.Fatalf("presence octet %#x: got %v, want ErrInvalidOptional", b, err)
		}
		we := wireErr(t, err)
		if we.Struct != "Holder" || we.Field != "maybe" || we.Offset != 1 {
			t.Errorf("presence octet %#x: error location %+v", b, we)
		}
	}

	d = NewDecoder(nil)
	if d.Optional("x") || !errors.Is(d.Err(), ErrTruncated) {
		t.Fatalf("Optional on empty input: %v", d.Err())
	}
}

func TestFinishRejectsTrailingData(t *testing.T) {
	d := NewDecoder([]byte{0x00, 0x01, 0xaa, 0xbb})
	d.Struct("Msg")
	d.U16("version")
	err := d.Finish()
	if !errors.Is(err, ErrTrailingData) {
		t.Fatalf("got %v, want ErrTrailingData", err)
	}
	we := wireErr(t, err)
	if we.Struct != "Msg" || we.Offset != 2 {
		t.Errorf("error location %+v, want Msg at byte 2", we)
	}
	if msg := err.Error(); !strings.Contains(msg, "Msg") || !strings.Contains(msg, "byte 2") || !strings.Contains(msg, "2 bytes") {
		t.Errorf("message %q does not say where and how much", msg)
	}
}

func TestErrorMessageWithoutNames(t *testing.T) {
	d := NewDecoder([]byte{1})
	err := d.Finish()
	if err == nil {
		t.Fatal("no error")
	}
	if msg := err.Error(); strings.Contains(msg, "decoding  at") || !strings.Contains(msg, "byte 0") {
		t.Errorf("unnamed error message %q", msg)
	}
}

func TestFirstErrorSticks(t *testing.T) {
	d := NewDecoder([]byte{0xff})
	d.Struct("S")
	d.Varint("first") // reserved prefix
	first := d.Err()
	if !errors.Is(first, ErrInvalidVarint) {
		t.Fatalf("got %v", first)
	}
	// Every later read is a no-op that returns zero values.
	if d.U8("second") != 0 || d.Opaque("third") != nil || d.Optional("fourth") {
		t.Error("reads after an error returned data")
	}
	d.Fail("fifth", ErrInvalidValue)
	d.Failf("sixth", "x")
	if err := d.Finish(); err != first {
		t.Fatalf("error changed from %v to %v", first, err)
	}
	if we := wireErr(t, first); we.Field != "first" {
		t.Errorf("field %q, want first", we.Field)
	}
}

func TestStructReturnsPrevious(t *testing.T) {
	d := NewDecoder(nil)
	if prev := d.Struct("Outer"); prev != "" {
		t.Fatalf("initial name %q", prev)
	}
	if prev := d.Struct("Inner"); prev != "Outer" {
		t.Fatalf("prev %q, want Outer", prev)
	}
	d.U8("x")
	we := wireErr(t, d.Err())
	if we.Struct != "Inner" || we.Field != "x" {
		t.Fatalf("error location %+v", we)
	}
}

func TestFailfWrapsInvalidValue(t *testing.T) {
	d := NewDecoder([]byte{0, 0, 9})
	d.Struct("Proposal")
	d.U16("type")
	d.Failf("type", "unknown proposal type %d", 9)
	err := d.Err()
	if !errors.Is(err, ErrInvalidValue) {
		t.Fatalf("got %v", err)
	}
	if msg := err.Error(); msg != "mls: decoding Proposal.type at byte 2: invalid value: unknown proposal type 9" {
		t.Fatalf("message %q", msg)
	}
}

// composite encodes one of everything; its encoding is spelled out by hand
// in compositeHex.
func encodeComposite(e *Encoder) {
	e.U8(0x01)
	e.U16(0x0203)
	e.U32(0x04050607)
	e.U64(0x08090a0b0c0d0e0f)
	e.Bool(true)
	e.Varint(300)
	e.Opaque([]byte("abc"))
	e.Vector(func(e *Encoder) {
		e.Opaque([]byte("x"))
		e.Opaque(nil)
	})
	e.Optional(true)
	e.U16(0xbeef)
	e.Optional(false)
	e.Raw([]byte{0x0a, 0x0b, 0x0c})
}

const compositeHex = "01 0203 04050607 08090a0b0c0d0e0f 01 412c 03616263 03 0178 00 01 beef 00 0a0b0c"

type composite struct {
	a     uint8
	b     uint16
	c     uint32
	d     uint64
	e     bool
	f     uint64
	g     []byte
	h     [][]byte
	i     *uint16
	j     *uint16
	fixed []byte
}

func decodeComposite(b []byte) (composite, error) {
	var c composite
	d := NewDecoder(b)
	d.Struct("Composite")
	c.a = d.U8("a")
	c.b = d.U16("b")
	c.c = d.U32("c")
	c.d = d.U64("d")
	c.e = d.Bool("e")
	c.f = d.Varint("f")
	c.g = d.Opaque("g")
	d.Vector("h", func(d *Decoder) { c.h = append(c.h, d.Opaque("h[]")) })
	if d.Optional("i") {
		v := d.U16("i")
		c.i = &v
	}
	if d.Optional("j") {
		v := d.U16("j")
		c.j = &v
	}
	c.fixed = d.Fixed("fixed", 3)
	return c, d.Finish()
}

func TestCompositeRoundTrip(t *testing.T) {
	e := NewEncoder(nil)
	encodeComposite(e)
	enc := mustBytes(t, e)
	want := unhex(t, compositeHex)
	if !bytes.Equal(enc, want) {
		t.Fatalf("encoding:\n got %x\nwant %x", enc, want)
	}
	c, err := decodeComposite(enc)
	if err != nil {
		t.Fatal(err)
	}
	if c.a != 1 || c.b != 0x0203 || c.c != 0x04050607 || c.d != 0x08090a0b0c0d0e0f || !c.e || c.f != 300 ||
		string(c.g) != "abc" || len(c.h) != 2 || string(c.h[0]) != "x" || c.h[1] == nil || len(c.h[1]) != 0 ||
		c.i == nil || *c.i != 0xbeef || c.j != nil || !bytes.Equal(c.fixed, []byte{0x0a, 0x0b, 0x0c}) {
		t.Fatalf("decoded %+v", c)
	}
}

// Every strict prefix of a valid encoding is a truncated input.
func TestEveryPrefixIsTruncated(t *testing.T) {
	full := unhex(t, compositeHex)
	for n := 0; n < len(full); n++ {
		_, err := decodeComposite(full[:n])
		if !errors.Is(err, ErrTruncated) {
			t.Errorf("prefix of %d/%d bytes: got %v, want ErrTruncated", n, len(full), err)
			continue
		}
		we := wireErr(t, err)
		if we.Struct != "Composite" || we.Field == "" || we.Offset < 0 || we.Offset > n {
			t.Errorf("prefix of %d bytes: error location %+v", n, we)
		}
	}
	// One extra byte is trailing data.
	if _, err := decodeComposite(append(append([]byte(nil), full...), 0)); !errors.Is(err, ErrTrailingData) {
		t.Errorf("extended by one byte: got %v, want ErrTrailingData", err)
	}
}

func TestTruncationNamesField(t *testing.T) {
	// 01 | 0203 | 0405 <- the uint32 "c" at byte 3 has only 2 of its 4 bytes.
	_, err := decodeComposite(unhex(t, "01 0203 0405"))
	we := wireErr(t, err)
	if we.Struct != "Composite" || we.Field != "c" || we.Offset != 3 {
		t.Fatalf("got %+v, want Composite.c at byte 3", we)
	}
	if msg := err.Error(); msg != "mls: decoding Composite.c at byte 3: truncated input" {
		t.Fatalf("message %q", msg)
	}
}

func TestNestedVectorRoundTrip(t *testing.T) {
	// A vector of vectors whose sizes straddle the 1-, 2- and 4-byte
	// header widths, so the encoder must move content after writing it.
	sizes := []int{0, 63, 64, 16384}
	e := NewEncoder(nil)
	e.Vector(func(e *Encoder) {
		for _, n := range sizes {
			e.Vector(func(e *Encoder) { e.Raw(bytes.Repeat([]byte{byte(n)}, n)) })
		}
	})
	enc := mustBytes(t, e)
	// Inner: 1+0, 1+63, 2+64, 4+16384 bytes = 16519 > 16383, so the
	// outer header takes 4 bytes.
	inner := 1 + 0 + 1 + 63 + 2 + 64 + 4 + 16384
	if len(enc) != 4+inner {
		t.Fatalf("encoding is %d bytes, want %d", len(enc), 4+inner)
	}
	wantHdr := []byte{0x80, 0x00, byte(inner >> 8), byte(inner)}
	if !bytes.Equal(enc[:4], wantHdr) {
		t.Fatalf("outer header %x, want %x", enc[:4], wantHdr)
	}
	// The 64-byte vector starts after 4 (outer) + 1 + 1 + 63 bytes.
	if off := 4 + 1 + 1 + 63; !bytes.Equal(enc[off:off+2], []byte{0x40, 0x40}) {
		t.Fatalf("header of the 64-byte vector: %x", enc[off:off+2])
	}

	d := NewDecoder(enc)
	var got [][]byte
	d.Vector("outer", func(d *Decoder) {
		var body []byte
		d.Vector("inner", func(d *Decoder) { body = append(body, d.U8("b")) })
		got = append(got, body)
	})
	if err := d.Finish(); err != nil {
		t.Fatal(err)
	}
	if len(got) != len(sizes) {
		t.Fatalf("decoded %d vectors, want %d", len(got), len(sizes))
	}
	for i, n := range sizes {
		if len(got[i]) != n || (n > 0 && got[i][n-1] != byte(n)) {
			t.Fatalf("vector %d: %d bytes", i, len(got[i]))
		}
	}
}

func TestVectorElementOverrunsHeader(t *testing.T) {
	// The vector header says 3 bytes (at byte 0); its only element is an
	// opaque whose own header (at byte 1) claims 5 bytes, 2 of which are
	// inside the vector. The bytes after the vector must not be borrowed,
	// and the error points at the element's header.
	in := unhex(t, "03 05 6162 636465")
	d := NewDecoder(in)
	d.Struct("Outer")
	d.Vector("items", func(d *Decoder) { d.Opaque("item") })
	err := d.Err()
	if !errors.Is(err, ErrTruncated) {
		t.Fatalf("got %v, want ErrTruncated", err)
	}
	we := wireErr(t, err)
	if we.Struct != "Outer" || we.Field != "item" || we.Offset != 1 {
		t.Fatalf("error location %+v, want Outer.item at byte 1", we)
	}
	if msg := err.Error(); !strings.Contains(msg, "Outer.item at byte 1") || !strings.Contains(msg, "5 bytes claimed, 2 remain") {
		t.Fatalf("message %q", msg)
	}

	// A fixed-size element that straddles the end of the vector.
	d = NewDecoder(unhex(t, "03 0001 02 03"))
	d.Vector("u16s", func(d *Decoder) { d.U16("v") })
	if err := d.Err(); !errors.Is(err, ErrTruncated) {
		t.Fatalf("straddling uint16: got %v", err)
	} else if we := wireErr(t, err); we.Offset != 3 {
		t.Fatalf("straddling uint16 at byte %d, want 3", we.Offset)
	}
}

func TestVectorElementMustConsume(t *testing.T) {
	d := NewDecoder([]byte{2, 0, 0})
	d.Vector("v", func(*Decoder) {})
	if err := d.Err(); !errors.Is(err, ErrInvalidValue) {
		t.Fatalf("got %v, want ErrInvalidValue", err)
	}
}

func TestVectorOffsetsAreAbsolute(t *testing.T) {
	// Two bytes of padding, then a vector of 4 bytes (header at byte 2)
	// holding two uint16 at bytes 3 and 5; a check on the second one fails
	// after it is read, when the decoder stands at byte 7 of the input.
	in := unhex(t, "aaaa 04 0001 0002")
	d := NewDecoder(in)
	d.Struct("S")
	d.U16("pad")
	i := 0
	d.Vector("list", func(d *Decoder) {
		v := d.U16("elem")
		if i == 1 && v == 2 {
			d.Fail("elem", ErrInvalidValue)
		}
		i++
	})
	we := wireErr(t, d.Err())
	if we.Offset != 7 || we.Field != "elem" {
		t.Fatalf("error location %+v, want elem at byte 7", we)
	}
}

// hugeClaims are 5-byte inputs whose length headers claim (nearly) 1 GiB.
var hugeClaims = []string{
	"bfffffff 00", // 2^30-1 bytes
	"b0000000 00", // 768 MiB
	"90000000 00", // 256 MiB, exactly MaxVectorLen
}

func TestHugeLengthRefusedWithoutAllocating(t *testing.T) {
	for _, h := range hugeClaims {
		in := unhex(t, h)
		for _, limit := range []int{MaxVectorLen, MaxVarint} {
			decode := func() error {
				d := NewDecoder(in)
				d.SetLimit(limit)
				d.Struct("Big")
				d.Opaque("blob")
				return d.Err()
			}
			err := decode()
			claimed := uint64(in[0]&0x3f)<<24 | uint64(in[1])<<16 | uint64(in[2])<<8 | uint64(in[3])
			want := ErrTruncated
			if claimed > uint64(limit) {
				want = ErrTooLarge
			}
			if !errors.Is(err, want) {
				t.Fatalf("%s with limit %d: got %v, want %v", h, limit, err, want)
			}
			if we := wireErr(t, err); we.Struct != "Big" || we.Field != "blob" || we.Offset != 0 {
				t.Errorf("error location %+v", we)
			}

			// Count allocations and bytes: the decoder, the error and
			// its message are all that may be allocated.
			allocs := testing.AllocsPerRun(50, func() { _ = decode() })
			if allocs > 10 {
				t.Errorf("%s with limit %d: %.0f allocations per decode", h, limit, allocs)
			}
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			for range 20 {
				_ = decode()
			}
			runtime.ReadMemStats(&after)
			if n := after.TotalAlloc - before.TotalAlloc; n > 1<<20 {
				t.Errorf("%s with limit %d: 20 decodes allocated %d bytes", h, limit, n)
			}
		}
	}
}

func TestHugeVectorRefusedWithoutAllocating(t *testing.T) {
	in := unhex(t, "bfffffff 00")
	calls := 0
	d := NewDecoder(in)
	d.SetLimit(MaxVarint + 1000) // clamped to MaxVarint
	d.Vector("list", func(d *Decoder) { calls++; d.U8("x") })
	if err := d.Err(); !errors.Is(err, ErrTruncated) {
		t.Fatalf("got %v, want ErrTruncated", err)
	}
	if calls != 0 {
		t.Fatalf("element decoder ran %d times on a refused vector", calls)
	}
}

func TestSetLimit(t *testing.T) {
	enc := []byte{4, 1, 2, 3, 4}
	d := NewDecoder(enc)
	d.SetLimit(3)
	d.Opaque("x")
	if err := d.Err(); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("4 bytes with limit 3: got %v", err)
	}
	if msg := d.Err().Error(); !strings.Contains(msg, "4 bytes claimed, limit 3") {
		t.Fatalf("message %q", msg)
	}
	d = NewDecoder(enc)
	d.SetLimit(4)
	if got := d.Opaque("x"); len(got) != 4 || d.Finish() != nil {
		t.Fatalf("4 bytes with limit 4: %x %v", got, d.Err())
	}
	// The limit applies inside vectors too.
	d = NewDecoder([]byte{3, 2, 1, 2})
	d.SetLimit(3)
	d.Vector("outer", func(d *Decoder) { d.OpaqueMax("inner", 10) })
	if err := d.Finish(); err != nil {
		t.Fatalf("nested within limit: %v", err)
	}
	d = NewDecoder([]byte{3, 2, 1, 2})
	d.SetLimit(1)
	d.Vector("outer", func(d *Decoder) { d.Opaque("inner") })
	if err := d.Err(); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("outer over limit: got %v", err)
	}
}

// TestOpaqueIn: fields read into an arena equal those Opaque reads, an
// empty one is non-nil, appending to one never overwrites the next, a
// large one is not put in the arena, and truncation fails as with Opaque.
func TestOpaqueIn(t *testing.T) {
	e := NewEncoder(nil)
	var want [][]byte
	for i := range 300 {
		b := bytes.Repeat([]byte{byte(i)}, i%70)
		want = append(want, b)
		e.Opaque(b)
	}
	big := bytes.Repeat([]byte{7}, maxChunk)
	e.Opaque(big)
	d := NewDecoder(e.MustBytes())
	var a Arena
	var got [][]byte
	for range want {
		got = append(got, d.OpaqueIn("f", &a))
	}
	gotBig := d.OpaqueIn("big", &a)
	if err := d.Finish(); err != nil {
		t.Fatal(err)
	}
	for i := range want {
		if got[i] == nil || !bytes.Equal(got[i], want[i]) {
			t.Fatalf("field %d: %x, want %x", i, got[i], want[i])
		}
	}
	if !bytes.Equal(gotBig, big) || cap(a.buf) > maxChunk {
		t.Fatal("large field wrong or put in the arena")
	}
	for i := range got[:len(got)-1] {
		_ = append(got[i], 0xff, 0xff, 0xff)
		if !bytes.Equal(got[i+1], want[i+1]) {
			t.Fatalf("appending to field %d changed field %d", i, i+1)
		}
	}
	d = NewDecoder([]byte{5, 1, 2})
	if b := d.OpaqueIn("short", &a); b != nil || !errors.Is(d.Err(), ErrTruncated) {
		t.Fatalf("truncated field: %x, %v", b, d.Err())
	}
}

// TestOpaqueInOwned: from NewOwnedDecoder, OpaqueIn returns the fields in
// place, inside vectors too, with no room to append over the next; an
// empty one is non-nil; Opaque still copies.
func TestOpaqueInOwned(t *testing.T) {
	e := NewEncoder(nil)
	e.Opaque([]byte("in place"))
	e.Vector(func(e *Encoder) {
		e.Opaque([]byte("nested"))
		e.Opaque(nil)
	})
	e.Opaque([]byte("copied"))
	in := e.MustBytes()
	orig := bytes.Clone(in)
	d := NewOwnedDecoder(in)
	var a Arena
	first := d.OpaqueIn("first", &a)
	var nested [][]byte
	d.Vector("v", func(d *Decoder) { nested = append(nested, d.OpaqueIn("nested", &a)) })
	last := d.Opaque("last")
	if err := d.Finish(); err != nil {
		t.Fatal(err)
	}
	if string(first) != "in place" || len(nested) != 2 || string(nested[0]) != "nested" || nested[1] == nil || len(nested[1]) != 0 || string(last) != "copied" {
		t.Fatalf("decoded %q %q %q", first, nested, last)
	}
	if &first[0] != &in[1] || &nested[0][0] != &in[11] {
		t.Fatal("OpaqueIn copied from an owned decoder")
	}
	if &last[0] == &in[len(in)-len(last)] {
		t.Fatal("Opaque did not copy")
	}
	_ = append(first, 'x')
	_ = append(nested[0], 'x')
	if !bytes.Equal(in, orig) {
		t.Fatal("appending to a field overwrote the input")
	}
}

// TestAliasingDecoder: byte fields are slices of the input, capacity
// limited so that appending to one cannot reach the next, also inside
// vectors; an empty field is empty, not nil.
func TestAliasingDecoder(t *testing.T) {
	in := unhex(t, "02 aabb 00 04 01cc01dd eeff")
	d := NewAliasingDecoder(in)
	a := d.Opaque("a")
	empty := d.Opaque("empty")
	var inner [][]byte
	d.Vector("v", func(d *Decoder) { inner = append(inner, d.Opaque("e")) })
	if len(inner) != 2 {
		t.Fatalf("vector: %d elements", len(inner))
	}
	fixed := d.Fixed("f", 2)
	if err := d.Finish(); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		got  []byte
		want []byte
		at   int
	}{{a, in[1:3], 1}, {inner[0], in[6:7], 6}, {inner[1], in[8:9], 8}, {fixed, in[9:11], 9}} {
		if !bytes.Equal(c.got, c.want) || &c.got[0] != &in[c.at] || cap(c.got) != len(c.got) {
			t.Fatalf("field %x at %d: not a capacity-limited slice of the input", c.got, c.at)
		}
	}
	if empty == nil || len(empty) != 0 {
		t.Fatalf("empty field: %#v", empty)
	}
	_ = append(a, 0xff)
	if in[3] != 0 {
		t.Fatal("appending to a field wrote into the input")
	}
}

// TestUintVectors: Uint16s and Uint32s read a vector in one allocation,
// and a partial last element fails as truncated at its offset, where
// reading the elements one by one would.
func TestUintVectors(t *testing.T) {
	d := NewDecoder(unhex(t, "04 0001 fffe 08 00000001 80000000 00"))
	u16 := Uint16s[uint16](d, "a")
	u32 := Uint32s[uint32](d, "b")
	none := Uint16s[uint16](d, "c")
	if err := d.Finish(); err != nil {
		t.Fatal(err)
	}
	if len(u16) != 2 || u16[0] != 1 || u16[1] != 0xfffe || len(u32) != 2 || u32[0] != 1 || u32[1] != 1<<31 || none == nil || len(none) != 0 {
		t.Fatalf("got %v %v %#v", u16, u32, none)
	}
	for _, c := range []struct {
		in   string
		get  func(*Decoder)
		elem func(*Decoder)
		want int
	}{
		{"03 0001 02", func(d *Decoder) { Uint16s[uint16](d, "a") }, func(d *Decoder) { d.U16("a") }, 3},
		{"06 00000001 0203", func(d *Decoder) { Uint32s[uint32](d, "a") }, func(d *Decoder) { d.U32("a") }, 5},
	} {
		in := unhex(t, c.in)
		d := NewDecoder(in)
		c.get(d)
		var e *Error
		if !errors.As(d.Err(), &e) || !errors.Is(e, ErrTruncated) || e.Offset != c.want {
			t.Fatalf("%s: %v, want truncated at byte %d", c.in, d.Err(), c.want)
		}
		// The same offset as reading the elements one by one.
		d = NewDecoder(in)
		d.Vector("a", c.elem)
		if !errors.As(d.Err(), &e) || e.Offset != c.want {
			t.Fatalf("%s: element by element: %v", c.in, d.Err())
		}
	}
}

// TestDetach: the fields read share one copy of the detached bytes, the
// copy is returned and the bytes consumed; a read that fails, or leaves
// bytes, fails d with offsets in d's input.
func TestDetach(t *testing.T) {
	in := unhex(t, "ff 02 aabb 01 cc 77")
	d := NewDecoder(in)
	d.U8("x")
	var a, c []byte
	own := d.Detach("s", 5, func(d *Decoder) {
		a = d.Opaque("a")
		c = d.Opaque("c")
	})
	if d.Err() != nil || d.U8("y") != 0x77 || d.Finish() != nil {
		t.Fatalf("detach: %v", d.Err())
	}
	if !bytes.Equal(own, in[1:6]) || &own[0] == &in[1] || &a[0] != &own[1] || &c[0] != &own[4] || !bytes.Equal(c, []byte{0xcc}) {
		t.Fatalf("fields %x %x not in the copy %x", a, c, own)
	}
	for _, c := range []struct {
		read func(*Decoder)
		want error
		at   int
	}{
		{func(d *Decoder) { d.Opaque("a") }, ErrTrailingData, 4},
		{func(d *Decoder) { d.Opaque("a"); d.Opaque("c"); d.U8("z") }, ErrTruncated, 6},
	} {
		d := NewDecoder(in)
		d.U8("x")
		if own := d.Detach("s", 5, c.read); own != nil {
			t.Fatal("a failed detach returned bytes")
		}
		var e *Error
		if !errors.As(d.Err(), &e) || !errors.Is(e, c.want) || e.Offset != c.at {
			t.Fatalf("%v, want %v at byte %d", d.Err(), c.want, c.at)
		}
	}
	d = NewDecoder(in[:3])
	if d.Detach("s", 5, func(*Decoder) {}) != nil || !errors.Is(d.Err(), ErrTruncated) {
		t.Fatalf("detach past the end: %v", d.Err())
	}
}
