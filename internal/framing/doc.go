// Package framing protects and unprotects MLS handshake and application
// messages: RFC 9420, Section 6 ("Message Framing").
//
// The read path is a chain of distinct types, so that no step can be
// skipped:
//
//	PublicMessage  --UnprotectPublic-->  *Unverified  --Verify(pub)-->  *message.AuthenticatedContent
//	PrivateMessage --UnprotectPrivate--> *Decrypted   --Verify(pub)-->  *message.AuthenticatedContent
//	                                                    --Consume()-->  secret tree advanced
//
// UnprotectPublic checks the membership tag (Section 6.2); UnprotectPrivate
// decrypts the sender data and the content (Sections 6.3.1 and 6.3.2) and
// checks the padding. Neither verifies the signature: the signer's key
// depends on the ratchet tree, which this package does not know, so the
// caller looks the key up from the still unverified sender and calls Verify.
// A caller that has looked the key up beforehand calls VerifyPublic, which
// does both in one step over one buffer laid out around the content as it
// was received, and also computes a commit's confirmed transcript hash
// (Section 8.2): for a commit with an UpdatePath in a fresh tree the content
// is O(N) bytes, and the signature is then verified concurrently with the
// two hashes.
// A decrypted PrivateMessage leaves the secret tree unchanged until the
// caller has accepted the message and calls Consume, so a message rejected
// at any step does not burn its key.
//
// The write path signs a FramedContent into an AuthenticatedContent
// (SignContent, Section 6.1) and protects it as a PublicMessage
// (ProtectPublic) or a PrivateMessage (ProtectPrivate). For a Commit the
// caller sets the confirmation tag between the two, using the transcript
// hash helpers (ConfirmedTranscriptHash, Section 8.2).
//
// Checking the group ID and epoch against the group's state, and that a
// member sender's leaf is not blank, is the caller's job: it owns that
// state. Every failure this package reports is an *Error wrapping one of the
// Err* sentinels.
package framing
