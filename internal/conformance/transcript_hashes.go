package conformance

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/mlskit/mls/internal/framing"
	"github.com/mlskit/mls/internal/message"
)

func init() { register("transcript-hashes.json", checkTranscriptHashes) }

type transcriptHashesVector struct {
	CipherSuite                  uint16 `json:"cipher_suite"`
	ConfirmationKey              hx     `json:"confirmation_key"`
	AuthenticatedContent         hx     `json:"authenticated_content"`
	InterimTranscriptHashBefore  hx     `json:"interim_transcript_hash_before"`
	ConfirmedTranscriptHashAfter hx     `json:"confirmed_transcript_hash_after"`
	InterimTranscriptHashAfter   hx     `json:"interim_transcript_hash_after"`
}

func checkTranscriptHashes(raw []byte, r *Report) error {
	var vs []transcriptHashesVector
	if err := json.Unmarshal(raw, &vs); err != nil {
		return err
	}
	for i := range vs {
		v := &vs[i]
		name := fmt.Sprintf("%d/suite=%d", i, v.CipherSuite)
		s, err := suiteFor(v.CipherSuite)
		if err != nil {
			r.Check(name, err)
			continue
		}
		var ac message.AuthenticatedContent
		if err := message.Unmarshal(v.AuthenticatedContent, &ac); err != nil {
			r.Check(name, fmt.Errorf("authenticated_content: %w", err))
			continue
		}
		if ac.Content.ContentType != message.ContentCommit {
			r.Check(name, fmt.Errorf("authenticated_content holds content type %d, want a commit", ac.Content.ContentType))
			continue
		}
		// The confirmation tag is MAC(confirmation_key,
		// confirmed_transcript_hash) (RFC 9420, Section 6.1).
		var tagErr error
		if !s.VerifyMAC(v.ConfirmationKey, v.ConfirmedTranscriptHashAfter, ac.Auth.ConfirmationTag) {
			tagErr = errors.New("confirmation_tag is not the MAC of confirmed_transcript_hash_after under confirmation_key")
		}
		r.Check(name+"/confirmation_tag", tagErr)
		r.Check(name+"/transcript_hashes", checkTranscriptHashVector(v, &ac))
	}
	return nil
}

func checkTranscriptHashVector(v *transcriptHashesVector, ac *message.AuthenticatedContent) error {
	s, err := suiteFor(v.CipherSuite)
	if err != nil {
		return err
	}
	confirmed, interim, err := framing.TranscriptHashes(s, v.InterimTranscriptHashBefore, ac)
	if err != nil {
		return err
	}
	if err := eq("confirmed_transcript_hash_after", confirmed, v.ConfirmedTranscriptHashAfter); err != nil {
		return err
	}
	return eq("interim_transcript_hash_after", interim, v.InterimTranscriptHashAfter)
}
