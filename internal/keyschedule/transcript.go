package keyschedule

import (
	"github.com/mlskit/mls/ciphersuite"
	"github.com/mlskit/mls/internal/wire"
)

// ConfirmedTranscriptHash returns (RFC 9420, Section 8.2)
//
//	confirmed_transcript_hash_[epoch] =
//	    Hash(interim_transcript_hash_[epoch - 1] || ConfirmedTranscriptHashInput_[epoch])
//
// confirmedInput is the encoded ConfirmedTranscriptHashInput (wire_format ||
// FramedContent || signature<V>); interim is empty for the first Commit of
// a group.
func ConfirmedTranscriptHash(s *ciphersuite.Suite, interim, confirmedInput []byte) []byte {
	h := s.NewHash()
	h.Write(interim)
	h.Write(confirmedInput)
	return h.Sum(nil)
}

// InterimTranscriptHash returns (RFC 9420, Section 8.2)
//
//	interim_transcript_hash_[epoch] =
//	    Hash(confirmed_transcript_hash_[epoch] || InterimTranscriptHashInput_[epoch])
//
// where InterimTranscriptHashInput is struct { MAC confirmation_tag; } and
// MAC is opaque<V>, so the tag is hashed with its length prefix.
func InterimTranscriptHash(s *ciphersuite.Suite, confirmed, confirmationTag []byte) []byte {
	h := s.NewHash()
	h.Write(confirmed)
	h.Write(wire.AppendVarint(nil, uint64(len(confirmationTag))))
	h.Write(confirmationTag)
	return h.Sum(nil)
}
