package conformance

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/mlskit/mls/internal/wire"
)

func init() { register("deserialization.json", checkDeserialization) }

// deserializationVector is one variable-length vector header (RFC 9420,
// Section 2.1.2) and the length it encodes.
type deserializationVector struct {
	Header hx      `json:"vlbytes_header"`
	Length *uint64 `json:"length"`
}

func checkDeserialization(raw []byte, r *Report) error {
	var vs []deserializationVector
	if err := json.Unmarshal(raw, &vs); err != nil {
		return err
	}
	for i, v := range vs {
		name := fmt.Sprintf("%d/header=%x", i, []byte(v.Header))
		r.Check(name, checkDeserializationVector(&v))
	}
	return nil
}

func checkDeserializationVector(v *deserializationVector) error {
	if v.Length == nil || len(v.Header) == 0 {
		return errors.New("vector lacks vlbytes_header or length")
	}
	want := *v.Length
	got, n, err := wire.ParseVarint(v.Header)
	if err != nil {
		return fmt.Errorf("decoding header: %w", err)
	}
	if n != len(v.Header) {
		return fmt.Errorf("header of %d bytes, decoder read %d", len(v.Header), n)
	}
	if got != want {
		return fmt.Errorf("length: got %d, want %d", got, want)
	}
	// The decoder used for structures must agree with ParseVarint.
	d := wire.NewDecoder(v.Header)
	if dv := d.Varint("vlbytes_header"); d.Finish() != nil || dv != want {
		return fmt.Errorf("Decoder.Varint: got %d, %v; want %d", dv, d.Err(), want)
	}
	// Minimal encoding is required, so re-encoding reproduces the header.
	if enc := wire.AppendVarint(nil, want); !bytes.Equal(enc, v.Header) {
		return mismatch("re-encoded header", enc, v.Header)
	}
	return nil
}
