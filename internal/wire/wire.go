package wire

import (
	"encoding/binary"
	"errors"
	"fmt"

	"golang.org/x/crypto/cryptobyte"
)

// MaxVarint is the largest value a variable-length integer can carry: 30 bits
// (RFC 9420, Section 2.1.2).
const MaxVarint = 1<<30 - 1

// MaxVectorLen is the default cap on the byte length of one vector. The
// protocol allows up to MaxVarint; this cap keeps a single field from
// claiming more than a large ratchet tree could ever need.
const MaxVectorLen = 1 << 28

// Sentinel errors, wrapped by *Error. Inspect them with errors.Is.
var (
	// ErrTruncated: the input ended before the structure did.
	ErrTruncated = errors.New("truncated input")
	// ErrTrailingData: bytes remain after a complete structure.
	ErrTrailingData = errors.New("trailing data")
	// ErrInvalidVarint: a length header uses the reserved 0b11 prefix
	// or a non-minimal encoding (Section 2.1.2).
	ErrInvalidVarint = errors.New("invalid variable-length integer")
	// ErrTooLarge: a vector claims more bytes than the cap allows.
	ErrTooLarge = errors.New("vector exceeds size limit")
	// ErrInvalidOptional: an optional<T> presence octet is neither 0 nor 1
	// (Section 2.1.1).
	ErrInvalidOptional = errors.New("invalid optional presence octet")
	// ErrInvalidValue: a field holds a value the RFC forbids.
	ErrInvalidValue = errors.New("invalid value")
)

// Error is a decoding failure: which structure and field, at which offset,
// and why (one of the sentinels above, or a more specific error).
type Error struct {
	Struct string // the structure being decoded, e.g. "KeyPackage"
	Field  string // the field, e.g. "init_key"
	// Offset is the byte offset into the top-level input where the failing
	// field starts (for Fail and Failf: where the decoder stands, that is,
	// just after the last field read).
	Offset int
	Err    error
}

func (e *Error) Error() string {
	where := e.Struct
	if e.Field != "" {
		if where != "" {
			where += "."
		}
		where += e.Field
	}
	if where == "" {
		where = "input"
	}
	return fmt.Sprintf("mls: decoding %s at byte %d: %v", where, e.Offset, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// Decoder reads MLS structures from a byte slice. The zero value is not
// usable; call NewDecoder.
type Decoder struct {
	s     cryptobyte.String
	total int // length of the top-level input, for offsets
	base  int // offset of s[0] in the top-level input
	limit int
	err   error
	strct string
	owned bool // NewOwnedDecoder
	alias bool // byte fields are slices of the input, not copies
}

// NewDecoder returns a decoder over b with the default vector cap. The
// decoder does not modify b; byte fields it returns are copies.
func NewDecoder(b []byte) *Decoder {
	return &Decoder{s: cryptobyte.String(b), total: len(b), limit: MaxVectorLen}
}

// NewOwnedDecoder is NewDecoder over input that the caller hands over and
// no longer modifies: the fields OpaqueIn reads are then sub-slices of b
// rather than copies into the arena (the fields an arena takes are
// dropped together, and with them b). Every other byte field is still a
// copy, so that what a decoded structure keeps for long does not hold b.
func NewOwnedDecoder(b []byte) *Decoder {
	d := NewDecoder(b)
	d.owned = true
	return d
}

// NewAliasingDecoder returns a decoder over b whose byte fields (Opaque,
// OpaqueIn, OpaqueMax, Fixed) are slices of b, capacity-limited, instead of
// copies. Use it only for an input its owner never modifies and keeps as
// long as the results, such as an encoding kept in memory in place of the
// decoded structure.
func NewAliasingDecoder(b []byte) *Decoder {
	d := NewDecoder(b)
	d.alias = true
	return d
}

// bytes returns r, or a copy of it unless the decoder aliases its input.
func (d *Decoder) bytes(r []byte) []byte {
	if d.alias {
		return r[:len(r):len(r)]
	}
	return append(make([]byte, 0, len(r)), r...)
}

// SetLimit lowers (or raises, up to MaxVarint) the cap on a single vector.
func (d *Decoder) SetLimit(n int) {
	if n > MaxVarint {
		n = MaxVarint
	}
	d.limit = n
}

// Struct sets the structure name used in errors until the next call. It
// returns the previous name so nested decoders can restore it.
func (d *Decoder) Struct(name string) (prev string) {
	prev, d.strct = d.strct, name
	return prev
}

// Err returns the first error met, or nil.
func (d *Decoder) Err() error { return d.err }

// Fail records err (if no error is recorded yet) for the given field.
func (d *Decoder) Fail(field string, err error) { d.failAt(field, d.offset(), err) }

// failAt records err for the field that starts at offset.
func (d *Decoder) failAt(field string, offset int, err error) {
	if d.err == nil {
		d.err = &Error{Struct: d.strct, Field: field, Offset: offset, Err: err}
	}
}

// Failf records a formatted ErrInvalidValue for the given field.
func (d *Decoder) Failf(field, format string, args ...any) {
	d.Fail(field, fmt.Errorf("%w: %s", ErrInvalidValue, fmt.Sprintf(format, args...)))
}

func (d *Decoder) offset() int { return d.base + (d.totalSub() - len(d.s)) }

// totalSub is the length of the region this decoder started with.
func (d *Decoder) totalSub() int { return d.total }

// Len returns the number of unread bytes.
func (d *Decoder) Len() int { return len(d.s) }

// Empty reports whether all input has been read (or an error occurred).
func (d *Decoder) Empty() bool { return d.err != nil || len(d.s) == 0 }

// Finish records ErrTrailingData if input remains, and returns Err.
func (d *Decoder) Finish() error {
	if d.err == nil && len(d.s) != 0 {
		d.Fail("", fmt.Errorf("%w: %d bytes", ErrTrailingData, len(d.s)))
	}
	return d.err
}

// U8 reads a uint8.
func (d *Decoder) U8(field string) uint8 {
	var v uint8
	if d.err == nil && !d.s.ReadUint8(&v) {
		d.Fail(field, ErrTruncated)
	}
	return v
}

// U16 reads a big-endian uint16.
func (d *Decoder) U16(field string) uint16 {
	var v uint16
	if d.err == nil && !d.s.ReadUint16(&v) {
		d.Fail(field, ErrTruncated)
	}
	return v
}

// U32 reads a big-endian uint32.
func (d *Decoder) U32(field string) uint32 {
	var v uint32
	if d.err == nil && !d.s.ReadUint32(&v) {
		d.Fail(field, ErrTruncated)
	}
	return v
}

// U64 reads a big-endian uint64.
func (d *Decoder) U64(field string) uint64 {
	var v uint64
	if d.err == nil && !d.s.ReadUint64(&v) {
		d.Fail(field, ErrTruncated)
	}
	return v
}

// Bool reads a uint8 that must be 0 or 1.
func (d *Decoder) Bool(field string) bool {
	at := d.offset()
	v := d.U8(field)
	if v > 1 {
		d.failAt(field, at, fmt.Errorf("%w: boolean octet %d", ErrInvalidValue, v))
	}
	return v == 1
}

// Varint reads a variable-length integer (Section 2.1.2), rejecting the
// 0b11 prefix and non-minimal encodings.
func (d *Decoder) Varint(field string) uint64 {
	if d.err != nil {
		return 0
	}
	v, n, err := ParseVarint(d.s)
	if err != nil {
		d.Fail(field, err)
		return 0
	}
	d.s = d.s[n:]
	return v
}

// ParseVarint decodes a variable-length integer at the start of b and returns
// its value and encoded size.
func ParseVarint(b []byte) (v uint64, n int, err error) {
	if len(b) == 0 {
		return 0, 0, ErrTruncated
	}
	prefix := b[0] >> 6
	if prefix == 3 {
		return 0, 0, fmt.Errorf("%w: reserved prefix 0b11", ErrInvalidVarint)
	}
	n = 1 << prefix
	if len(b) < n {
		return 0, 0, ErrTruncated
	}
	v = uint64(b[0] & 0x3f)
	for i := 1; i < n; i++ {
		v = v<<8 | uint64(b[i])
	}
	if n > 1 && v < 1<<(8*(n/2)-2) {
		return 0, 0, fmt.Errorf("%w: %d encoded in %d bytes", ErrInvalidVarint, v, n)
	}
	return v, n, nil
}

// region reads a varint length header and returns that many bytes without
// copying them.
func (d *Decoder) region(field string) (cryptobyte.String, bool) {
	at := d.offset()
	n := d.Varint(field)
	if d.err != nil {
		return nil, false
	}
	if n > uint64(d.limit) {
		d.failAt(field, at, fmt.Errorf("%w: %d bytes claimed, limit %d", ErrTooLarge, n, d.limit))
		return nil, false
	}
	if n > uint64(len(d.s)) {
		d.failAt(field, at, fmt.Errorf("%w: %d bytes claimed, %d remain", ErrTruncated, n, len(d.s)))
		return nil, false
	}
	var out cryptobyte.String
	d.s.ReadBytes((*[]byte)(&out), int(n))
	return out, true
}

// Opaque reads opaque<V> and returns a copy of its contents (never nil on
// success, so an empty vector and an absent value stay distinct).
func (d *Decoder) Opaque(field string) []byte {
	r, ok := d.region(field)
	if !ok {
		return nil
	}
	return d.bytes(r)
}

// SkipVector reads a varint-prefixed vector and drops its contents.
func (d *Decoder) SkipVector(field string) { d.region(field) }

// Arena is a buffer that OpaqueIn copies fields into, so that the many
// small fields of one large structure (the HPKE ciphertexts of an
// UpdatePath that encrypts to every member of a fresh tree, RFC 9420,
// Section 7.6) share a few allocations instead of taking two each. A field
// keeps its chunk alive, so use an arena only for fields that are
// dropped together. The zero value is ready to use.
type Arena struct {
	buf  []byte
	next int // size of the next chunk
}

// Arena chunks grow from minChunk to maxChunk bytes; a field above
// maxChunk/4 bytes gets its own allocation.
const (
	minChunk = 512
	maxChunk = 64 << 10
)

// OpaqueIn reads opaque<V> like Opaque, copying the bytes into a, or for
// a decoder from NewOwnedDecoder returning them in place (with no room to
// append in place).
func (d *Decoder) OpaqueIn(field string, a *Arena) []byte {
	r, ok := d.region(field)
	if !ok {
		return nil
	}
	if d.owned && len(r) > 0 {
		return r[:len(r):len(r)]
	}
	if len(r) == 0 || len(r) > maxChunk/4 || d.alias {
		return d.bytes(r)
	}
	if cap(a.buf)-len(a.buf) < len(r) {
		a.next = min(max(2*a.next, minChunk), maxChunk)
		a.buf = make([]byte, 0, a.next)
	}
	start := len(a.buf)
	a.buf = append(a.buf, r...)
	return a.buf[start:len(a.buf):len(a.buf)]
}

// OpaqueMax reads opaque<V> and fails unless it has at most max bytes.
func (d *Decoder) OpaqueMax(field string, max int) []byte {
	at := d.offset()
	b := d.Opaque(field)
	if d.err == nil && len(b) > max {
		d.failAt(field, at, fmt.Errorf("%w: %d bytes, at most %d allowed", ErrTooLarge, len(b), max))
		return nil
	}
	return b
}

// Fixed reads exactly n bytes (opaque field[n]) and returns a copy.
func (d *Decoder) Fixed(field string, n int) []byte {
	if d.err != nil {
		return nil
	}
	if n < 0 {
		d.Failf(field, "negative fixed length %d", n)
		return nil
	}
	if n > len(d.s) {
		d.Fail(field, ErrTruncated)
		return nil
	}
	out := d.bytes(d.s[:n])
	d.s = d.s[n:]
	return out
}

// Vector reads a varint-prefixed vector and calls elem until its contents
// are used up. elem reads one element from the decoder it is given, which
// shares error state with d. A vector whose last element overruns its
// length header is an error.
func (d *Decoder) Vector(field string, elem func(*Decoder)) {
	start := d.offset()
	r, ok := d.region(field)
	if !ok || len(r) == 0 {
		return
	}
	sub := &Decoder{s: r, total: len(r), base: start + varintLen(uint64(len(r))), limit: d.limit, strct: d.strct, owned: d.owned, alias: d.alias}
	for len(sub.s) > 0 && sub.err == nil {
		before := len(sub.s)
		elem(sub)
		if sub.err == nil && len(sub.s) == before {
			sub.Fail(field, fmt.Errorf("%w: element consumed no bytes", ErrInvalidValue))
		}
	}
	if sub.err != nil && d.err == nil {
		d.err = sub.err
	}
}

// Uint16s reads a vector of uint16 values into one allocation; a byte
// length that is not a multiple of 2 fails as truncated at the partial
// element, as reading the elements one by one with U16 would.
func Uint16s[T ~uint16](d *Decoder, field string) []T {
	return fixedVector(d, field, 2, func(b []byte) T { return T(binary.BigEndian.Uint16(b)) })
}

// Uint32s is Uint16s for uint32 values.
func Uint32s[T ~uint32](d *Decoder, field string) []T {
	return fixedVector(d, field, 4, func(b []byte) T { return T(binary.BigEndian.Uint32(b)) })
}

// fixedVector reads a vector of elements of size bytes each, decoded by
// get.
func fixedVector[T any](d *Decoder, field string, size int, get func([]byte) T) []T {
	start := d.offset()
	r, ok := d.region(field)
	if !ok {
		return nil
	}
	if rem := len(r) % size; rem != 0 {
		d.failAt(field, start+varintLen(uint64(len(r)))+len(r)-rem, ErrTruncated)
		return nil
	}
	out := make([]T, len(r)/size)
	for i := range out {
		out[i] = get(r[i*size:])
	}
	return out
}

// Detach reads the next n bytes with read, from a copy of them that the
// byte fields read share (see NewAliasingDecoder), so that they take one
// allocation, and returns the copy. read must consume exactly the n bytes;
// its errors become d's, with offsets in d's input.
func (d *Decoder) Detach(field string, n int, read func(*Decoder)) []byte {
	if d.err != nil {
		return nil
	}
	if n < 0 || n > len(d.s) {
		d.Fail(field, ErrTruncated)
		return nil
	}
	own := append(make([]byte, 0, n), d.s[:n]...)
	sub := &Decoder{s: own, total: n, base: d.offset(), limit: d.limit, strct: d.strct, alias: true}
	read(sub)
	if sub.err == nil && len(sub.s) != 0 {
		sub.Fail(field, fmt.Errorf("%w: %d bytes", ErrTrailingData, len(sub.s)))
	}
	if sub.err != nil {
		d.err = sub.err
		return nil
	}
	d.s = d.s[n:]
	return own
}

// Optional reads an optional<T> presence octet (Section 2.1.1) and reports
// whether a value follows.
func (d *Decoder) Optional(field string) bool {
	at := d.offset()
	v := d.U8(field)
	if d.err == nil && v > 1 {
		d.failAt(field, at, fmt.Errorf("%w: %d", ErrInvalidOptional, v))
	}
	return v == 1 && d.err == nil
}

// Rest returns a copy of all unread bytes and consumes them.
func (d *Decoder) Rest() []byte {
	if d.err != nil {
		return nil
	}
	out := append([]byte(nil), d.s...)
	d.s = d.s[len(d.s):]
	return out
}

// Peek returns the unread bytes without consuming or copying them. The
// caller must not modify or keep the slice.
func (d *Decoder) Peek() []byte { return d.s }

// Skip consumes n bytes.
func (d *Decoder) Skip(field string, n int) {
	if d.err == nil && !d.s.Skip(n) {
		d.Fail(field, ErrTruncated)
	}
}

func varintLen(n uint64) int {
	switch {
	case n < 1<<6:
		return 1
	case n < 1<<14:
		return 2
	default:
		return 4
	}
}

// Encoder appends MLS structures to a byte slice. The zero value is ready
// to use.
type Encoder struct {
	buf []byte
	err error
}

// NewEncoder returns an encoder that appends to buf.
func NewEncoder(buf []byte) *Encoder { return &Encoder{buf: buf} }

// Bytes returns the encoding, or an error if a vector exceeded MaxVarint.
func (e *Encoder) Bytes() ([]byte, error) { return e.buf, e.err }

// MustBytes returns the encoding and panics on an encoder error. Use it only
// where the value was built by this program and cannot exceed the limits.
func (e *Encoder) MustBytes() []byte {
	if e.err != nil {
		panic(e.err)
	}
	return e.buf
}

// Len returns the number of bytes written so far.
func (e *Encoder) Len() int { return len(e.buf) }

// U8 appends a uint8.
func (e *Encoder) U8(v uint8) { e.buf = append(e.buf, v) }

// U16 appends a big-endian uint16.
func (e *Encoder) U16(v uint16) { e.buf = append(e.buf, byte(v>>8), byte(v)) }

// U32 appends a big-endian uint32.
func (e *Encoder) U32(v uint32) {
	e.buf = append(e.buf, byte(v>>24), byte(v>>16), byte(v>>8), byte(v))
}

// U64 appends a big-endian uint64.
func (e *Encoder) U64(v uint64) {
	e.U32(uint32(v >> 32))
	e.U32(uint32(v))
}

// Bool appends 1 or 0.
func (e *Encoder) Bool(v bool) {
	if v {
		e.U8(1)
	} else {
		e.U8(0)
	}
}

// Varint appends v in the minimal variable-length encoding.
func (e *Encoder) Varint(v uint64) {
	if v > MaxVarint {
		if e.err == nil {
			e.err = fmt.Errorf("mls: encoding: %d exceeds the 30-bit varint range", v)
		}
		return
	}
	e.buf = AppendVarint(e.buf, v)
}

// AppendVarint appends the minimal encoding of v (v <= MaxVarint).
func AppendVarint(b []byte, v uint64) []byte {
	switch varintLen(v) {
	case 1:
		return append(b, byte(v))
	case 2:
		return append(b, byte(v>>8)|0x40, byte(v))
	default:
		return append(b, byte(v>>24)|0x80, byte(v>>16), byte(v>>8), byte(v))
	}
}

// Opaque appends opaque<V>.
func (e *Encoder) Opaque(b []byte) {
	e.Varint(uint64(len(b)))
	e.buf = append(e.buf, b...)
}

// Raw appends b with no length header.
func (e *Encoder) Raw(b []byte) { e.buf = append(e.buf, b...) }

// Optional appends an optional<T> presence octet.
func (e *Encoder) Optional(present bool) { e.Bool(present) }

// Vector appends a varint-prefixed vector whose contents body writes.
func (e *Encoder) Vector(body func(*Encoder)) {
	// One byte is reserved for the length header, enough for a body of
	// fewer than 64 bytes; a longer body is moved up once.
	start := len(e.buf)
	e.buf = append(e.buf, 0)
	body(e)
	n := len(e.buf) - start - 1
	if n > MaxVarint {
		if e.err == nil {
			e.err = fmt.Errorf("mls: encoding: vector of %d bytes exceeds 2^30", n)
		}
		return
	}
	if h := varintLen(uint64(n)); h > 1 {
		e.buf = append(e.buf, make([]byte, h-1)...)
		copy(e.buf[start+h:], e.buf[start+1:start+1+n])
	}
	AppendVarint(e.buf[start:start], uint64(n))
}

// VarintLen returns the length of the minimal variable-length encoding of
// n (RFC 9420, Section 2.1.2).
func VarintLen(n uint64) int { return varintLen(n) }
