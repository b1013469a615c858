package ds

import (
	"bytes"
	"context"
	"errors"

	"connectrpc.com/connect"

	"github.com/mlskit/mls"
	mlsdv1 "github.com/mlskit/mls/proto/mlsd/v1"
)

// mustSession returns the request's session; the interceptor guarantees
// one on every RPC but Challenge and Authenticate.
func mustSession(ctx context.Context) (Session, error) {
	sess, ok := sessionOf(ctx)
	if !ok {
		return Session{}, fail(mlsdv1.Error_REASON_UNAUTHENTICATED, "not authenticated")
	}
	return sess, nil
}

// PublishKeyPackages stores the caller's key packages (RFC 9750, Section
// 5.1). Each is parsed and its signature verified (mls.ParseKeyPackage,
// RFC 9420, Section 10.1); its credential and signature key must be the
// caller's, so nobody publishes key packages in another's name. All or
// none are stored.
func (s *Server) PublishKeyPackages(ctx context.Context, req *connect.Request[mlsdv1.PublishKeyPackagesRequest]) (*connect.Response[mlsdv1.PublishKeyPackagesResponse], error) {
	sess, err := mustSession(ctx)
	if err != nil {
		return nil, err
	}
	in := req.Msg.KeyPackages
	if len(in) == 0 {
		return nil, fail(mlsdv1.Error_REASON_MALFORMED, "no key packages")
	}
	if len(in) > MaxKeyPackagesPerRequest {
		return nil, fail(mlsdv1.Error_REASON_TOO_LARGE, "%d key packages in one request; at most %d", len(in), MaxKeyPackagesPerRequest)
	}
	for i, b := range in {
		if len(b) > s.opts.MaxMessageSize {
			return nil, fail(mlsdv1.Error_REASON_TOO_LARGE, "key package %d is %d bytes; at most %d", i, len(b), s.opts.MaxMessageSize)
		}
	}
	now := s.now()
	kps := make([]KeyPackage, 0, len(in))
	refs := make([][]byte, 0, len(in))
	for i, b := range in {
		msg, err := mls.ParseMessage(b)
		if err != nil {
			return nil, failWith(mlsdv1.Error_REASON_MALFORMED, err, "key package %d", i)
		}
		if msg.WireFormat() != mls.WireFormatKeyPackage {
			return nil, fail(mlsdv1.Error_REASON_MALFORMED, "key package %d: a %v, not an MLSMessage holding a KeyPackage", i, msg.WireFormat())
		}
		kp, err := mls.ParseKeyPackage(b)
		if err != nil {
			return nil, classifyAs(mlsdv1.Error_REASON_INVALID_MESSAGE, err, "key package %d", i)
		}
		credBytes, err := kp.Credential().MarshalBinary()
		if err != nil {
			return nil, err
		}
		if !bytes.Equal(credBytes, sess.Credential) || !bytes.Equal(kp.SignatureKey(), sess.SignatureKey) {
			return nil, fail(mlsdv1.Error_REASON_NOT_OWNER, "key package %d: its credential and signature key are not the caller's", i)
		}
		notBefore, notAfter := kp.Lifetime()
		if !now.Before(notAfter) || notAfter.Before(notBefore) {
			return nil, fail(mlsdv1.Error_REASON_INVALID_MESSAGE, "key package %d: expired (not after %v)", i, notAfter.UTC())
		}
		data, err := kp.MarshalMessage()
		if err != nil {
			return nil, err
		}
		kps = append(kps, KeyPackage{
			Ref: kp.Ref(), Identity: sess.Identity, Suite: uint16(kp.CipherSuite()), Data: data,
			LastResort: kp.IsLastResort(), NotAfter: notAfter,
		})
		refs = append(refs, kp.Ref())
	}
	if err := s.store.PutKeyPackages(ctx, kps); err != nil {
		return nil, err
	}
	s.log.DebugContext(ctx, "key packages published", "identity", printable(sess.Identity), "count", len(kps))
	return connect.NewResponse(&mlsdv1.PublishKeyPackagesResponse{Refs: refs}), nil
}

// FetchKeyPackage hands out one key package of an identity and suite, once
// (RFC 9750, Section 5.1); a last-resort one when no other is left.
func (s *Server) FetchKeyPackage(ctx context.Context, req *connect.Request[mlsdv1.FetchKeyPackageRequest]) (*connect.Response[mlsdv1.FetchKeyPackageResponse], error) {
	m := req.Msg
	if len(m.Identity) == 0 || len(m.Identity) > maxSmallField {
		return nil, fail(mlsdv1.Error_REASON_MALFORMED, "identity of %d bytes", len(m.Identity))
	}
	if m.CipherSuite == 0 || m.CipherSuite > 0xffff {
		return nil, fail(mlsdv1.Error_REASON_MALFORMED, "cipher suite %d out of range", m.CipherSuite)
	}
	kp, err := s.store.TakeKeyPackage(ctx, m.Identity, uint16(m.CipherSuite), s.now())
	if errors.Is(err, ErrNotFound) {
		return nil, fail(mlsdv1.Error_REASON_NO_KEY_PACKAGE, "no key package of %s for cipher suite 0x%04x", printable(m.Identity), m.CipherSuite)
	}
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&mlsdv1.FetchKeyPackageResponse{KeyPackage: kp.Data, LastResort: kp.LastResort}), nil
}

// CountKeyPackages tells the caller how many of its key packages are left,
// so that it publishes more before the last-resort one is used (RFC 9750,
// Section 5.1, recommendation).
func (s *Server) CountKeyPackages(ctx context.Context, req *connect.Request[mlsdv1.CountKeyPackagesRequest]) (*connect.Response[mlsdv1.CountKeyPackagesResponse], error) {
	sess, err := mustSession(ctx)
	if err != nil {
		return nil, err
	}
	suite := req.Msg.CipherSuite
	if suite == 0 {
		suite = uint32(sess.CipherSuite)
	}
	if suite > 0xffff {
		return nil, fail(mlsdv1.Error_REASON_MALFORMED, "cipher suite %d out of range", suite)
	}
	n, lr, err := s.store.CountKeyPackages(ctx, sess.Identity, uint16(suite), s.now())
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&mlsdv1.CountKeyPackagesResponse{Count: uint32(n), HasLastResort: lr}), nil
}

// classifyAs classifies an MLS error (MALFORMED for bytes that do not
// decode, else the given reason) with a detail.
func classifyAs(reason mlsdv1.Error_Reason, err error, format string, args ...any) *rpcError {
	if errors.Is(err, mls.ErrMalformed) || errors.Is(err, mls.ErrUnsupported) {
		reason = mlsdv1.Error_REASON_MALFORMED
	}
	return failWith(reason, err, format, args...)
}
