// Package wire implements the TLS presentation language as MLS uses it
// (RFC 9420, Section 2.1): fixed-width integers, the variable-length integers
// of Section 2.1.2 used as vector length headers, optional<T> (Section
// 2.1.1) and opaque / struct vectors.
//
// Encoding goes through an Encoder that appends to a byte slice. Decoding
// goes through a Decoder over a cryptobyte.String: the first failure is kept
// as a typed *Error naming the structure and field, and every later read is a
// no-op, so a decoder for a struct reads field after field and checks Err once
// at the end.
//
// A Decoder never allocates more than the input proves: a claimed length is
// compared with the bytes that remain before anything is copied, and every
// vector is capped (MaxVectorLen, or a smaller per-decoder limit).
package wire
