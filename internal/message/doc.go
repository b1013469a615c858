// Package message holds the wire structures of RFC 9420 (key packages, leaf
// and parent nodes, proposals, commits, framing, Welcome, GroupInfo,
// extensions, credentials) and their encodings in the TLS presentation
// language (Section 2.1), built on internal/wire.
//
// Decoding rejects trailing bytes and values the RFC forbids; values of
// unknown types (extensions, credentials, proposals) are kept byte for byte.
// This package checks structure only; semantic validation (signatures,
// capabilities, tree rules) is done by the packages that own the state.
package message
