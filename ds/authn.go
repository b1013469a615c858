package ds

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"io"

	"connectrpc.com/connect"

	"github.com/mlskit/mls/ciphersuite"
	"github.com/mlskit/mls/credential"
	mlsdv1 "github.com/mlskit/mls/proto/mlsd/v1"
)

// Challenge issues a one-time challenge for a credential and signature key
// (RFC 9750, Section 5: the DS authenticates clients; here by their MLS
// signature key, bound to the credential as in a leaf node, RFC 9420,
// Section 5.3). The credential must pass the Validator before anything is
// stored.
func (s *Server) Challenge(ctx context.Context, req *connect.Request[mlsdv1.ChallengeRequest]) (*connect.Response[mlsdv1.ChallengeResponse], error) {
	m := req.Msg
	if len(m.Credential) > maxSmallField || len(m.SignatureKey) > maxSmallField {
		return nil, fail(mlsdv1.Error_REASON_TOO_LARGE, "credential or signature key larger than %d bytes", maxSmallField)
	}
	if m.CipherSuite > 0xffff {
		return nil, fail(mlsdv1.Error_REASON_MALFORMED, "cipher suite %d out of range", m.CipherSuite)
	}
	if _, err := ciphersuite.Lookup(ciphersuite.ID(m.CipherSuite)); err != nil {
		return nil, failWith(mlsdv1.Error_REASON_MALFORMED, err, "cipher suite 0x%04x", m.CipherSuite)
	}
	cred, err := s.checkCredential(m.Credential, m.SignatureKey)
	if err != nil {
		return nil, err
	}
	if _, err := s.identityOf(cred, m.SignatureKey); err != nil {
		return nil, err
	}
	nonce := make([]byte, 32)
	if _, err := io.ReadFull(s.rand, nonce); err != nil {
		return nil, err
	}
	exp := s.now().Add(s.opts.ChallengeTTL)
	if err := s.store.PutChallenge(ctx, Challenge{
		Nonce: nonce, Credential: bytes.Clone(m.Credential), SignatureKey: bytes.Clone(m.SignatureKey),
		CipherSuite: uint16(m.CipherSuite), Expires: exp,
	}); err != nil {
		return nil, err
	}
	return connect.NewResponse(&mlsdv1.ChallengeResponse{Challenge: nonce, ServerName: s.opts.ServerName, ExpiresUnix: exp.Unix()}), nil
}

// Authenticate trades a signed challenge for a bearer token. The challenge
// is taken from the Store first, so it is used once whether the signature
// is good or not; the signature is VerifyWithLabel(signature_key,
// AuthLabel, AuthContent(challenge, server_name)) under the suite's
// signature scheme (RFC 9420, Section 5.1.2). The token is random; only
// its SHA-256 is stored.
func (s *Server) Authenticate(ctx context.Context, req *connect.Request[mlsdv1.AuthenticateRequest]) (*connect.Response[mlsdv1.AuthenticateResponse], error) {
	m := req.Msg
	if len(m.Challenge) == 0 || len(m.Challenge) > 64 || len(m.Signature) > maxSmallField {
		return nil, fail(mlsdv1.Error_REASON_UNAUTHENTICATED, "no such challenge")
	}
	now := s.now()
	ch, err := s.store.TakeChallenge(ctx, m.Challenge, now)
	if errors.Is(err, ErrNotFound) {
		return nil, fail(mlsdv1.Error_REASON_UNAUTHENTICATED, "unknown, used or expired challenge")
	}
	if err != nil {
		return nil, err
	}
	suite, err := ciphersuite.Lookup(ciphersuite.ID(ch.CipherSuite))
	if err != nil {
		return nil, failWith(mlsdv1.Error_REASON_MALFORMED, err, "cipher suite")
	}
	if err := suite.VerifyWithLabel(ch.SignatureKey, AuthLabel, AuthContent(ch.Nonce, s.opts.ServerName), m.Signature); err != nil {
		return nil, fail(mlsdv1.Error_REASON_UNAUTHENTICATED, "bad challenge signature")
	}
	// The validator is asked again: a certificate may have expired since.
	cred, err := s.checkCredential(ch.Credential, ch.SignatureKey)
	if err != nil {
		return nil, err
	}
	id, err := s.identityOf(cred, ch.SignatureKey)
	if err != nil {
		return nil, err
	}
	raw := make([]byte, 32)
	if _, err := io.ReadFull(s.rand, raw); err != nil {
		return nil, err
	}
	token := base64.RawURLEncoding.EncodeToString(raw)
	h := sha256.Sum256([]byte(token))
	sess := Session{
		TokenHash: h[:], Identity: id, Credential: ch.Credential, SignatureKey: ch.SignatureKey,
		CipherSuite: ch.CipherSuite, Expires: now.Add(s.opts.SessionTTL),
	}
	if err := s.store.PutSession(ctx, sess); err != nil {
		return nil, err
	}
	s.cacheSession(sess)
	s.log.InfoContext(ctx, "client authenticated", "identity", printable(id))
	return connect.NewResponse(&mlsdv1.AuthenticateResponse{Token: token, ExpiresUnix: sess.Expires.Unix(), Identity: id}), nil
}

// checkCredential decodes a Credential and checks it against the signature
// key (X.509: the leaf certificate's key, RFC 9420, Section 5.3) and the
// Validator.
func (s *Server) checkCredential(raw, sigKey []byte) (credential.Credential, error) {
	var cred credential.Credential
	if err := cred.UnmarshalBinary(raw); err != nil {
		return cred, failWith(mlsdv1.Error_REASON_MALFORMED, err, "credential")
	}
	if len(sigKey) == 0 {
		return cred, fail(mlsdv1.Error_REASON_MALFORMED, "empty signature key")
	}
	if err := cred.CheckSignatureKey(sigKey); err != nil {
		return cred, failWith(mlsdv1.Error_REASON_UNAUTHENTICATED, err, "credential does not bind the signature key")
	}
	if err := s.opts.Validator.Validate(cred, sigKey); err != nil {
		return cred, failWith(mlsdv1.Error_REASON_UNAUTHENTICATED, err, "credential refused")
	}
	return cred, nil
}

// identityOf is the identity the server knows a client by: the validator's
// verified identity when it has one (X.509: the configured subject field or
// SAN), else the credential's (a basic identity, an X.509 DER subject).
func (s *Server) identityOf(cred credential.Credential, sigKey []byte) ([]byte, error) {
	if v, ok := s.opts.Validator.(interface {
		VerifiedIdentity(credential.Credential, []byte) (string, error)
	}); ok {
		id, err := v.VerifiedIdentity(cred, sigKey)
		if err != nil {
			return nil, failWith(mlsdv1.Error_REASON_UNAUTHENTICATED, err, "credential has no identity")
		}
		return []byte(id), nil
	}
	id := cred.Identity()
	if len(id) == 0 {
		return nil, fail(mlsdv1.Error_REASON_UNAUTHENTICATED, "credential has no identity")
	}
	return id, nil
}

// printable renders an identity for logs: as text when it is printable
// ASCII, else in hex.
func printable(b []byte) string {
	for _, c := range b {
		if c < 0x20 || c > 0x7e {
			return "0x" + hexString(b)
		}
	}
	return string(b)
}

func hexString(b []byte) string {
	const digits = "0123456789abcdef"
	if len(b) > 64 {
		b = b[:64]
	}
	out := make([]byte, 2*len(b))
	for i, c := range b {
		out[2*i], out[2*i+1] = digits[c>>4], digits[c&15]
	}
	return string(out)
}
