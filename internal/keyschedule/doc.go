// Package keyschedule implements the key schedule of RFC 9420, Section 8:
// the chain init_secret -> joiner_secret -> (with the PSK secret) ->
// welcome_secret and epoch_secret -> the secrets of an epoch, the PSK
// secret of Section 8.4, the external initialisation of Section 8.3,
// exporters (Section 8.5), confirmation tags and transcript hashes
// (Section 8.2).
//
// Each stage is its own opaque type, so stages cannot be mixed up or run
// out of order:
//
//	InitSecret --Joiner(commit_secret, GroupContext)--> JoinerSecret
//	JoinerSecret --Intermediate(PSKSecret)--> IntermediateSecret
//	IntermediateSecret --Welcome()--> WelcomeSecret (welcome key and nonce, Section 12.4.3.1)
//	IntermediateSecret --Epoch(GroupContext)--> EpochSecrets
//	EpochSecrets --InitSecret()--> InitSecret of the next epoch
//
// Raw bytes leave a stage only through explicitly named accessors (Bytes,
// SenderDataSecret, EncryptionSecret, ...), which return copies. Every
// secret type prints as REDACTED with any fmt verb and compares in constant
// time. Constructors copy their input and check its length.
//
// Encodings of protocol structures (GroupContext, PreSharedKeyID,
// ConfirmedTranscriptHashInput) are taken as bytes, so this package does
// not depend on internal/message.
//
// See https://www.rfc-editor.org/rfc/rfc9420.html#section-8.
package keyschedule
