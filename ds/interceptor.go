package ds

import (
	"context"
	"crypto/sha256"
	"errors"
	"net"
	"strings"
	"time"

	"connectrpc.com/connect"

	mlsdv1 "github.com/mlskit/mls/proto/mlsd/v1"
	"github.com/mlskit/mls/proto/mlsd/v1/mlsdv1connect"
)

// interceptor authenticates every request but Challenge and Authenticate
// (RFC 9750, Section 8.1.3, DoS Protection: no anonymous client sends
// anything to a group), applies the rate limit, turns errors into Connect errors with their
// mlsd.v1.Error detail, and records metrics.
type interceptor struct{ s *Server }

type sessionKey struct{}

// sessionOf returns the authenticated session of a request.
func sessionOf(ctx context.Context) (Session, bool) {
	s, ok := ctx.Value(sessionKey{}).(Session)
	return s, ok
}

// public reports the procedures a client calls before it has a token.
func public(procedure string) bool {
	return procedure == mlsdv1connect.DeliveryServiceChallengeProcedure ||
		procedure == mlsdv1connect.DeliveryServiceAuthenticateProcedure
}

// rpcName is the last element of a procedure, for metrics and logs.
func rpcName(procedure string) string {
	if i := strings.LastIndexByte(procedure, '/'); i >= 0 {
		return procedure[i+1:]
	}
	return procedure
}

// admit authenticates and rate-limits one request, returning the context
// the handler runs with.
func (s *Server) admit(ctx context.Context, procedure string, header func(string) string, peer string) (context.Context, error) {
	if s.ctx.Err() != nil {
		return ctx, connect.NewError(connect.CodeUnavailable, errors.New("mlsd is shutting down"))
	}
	if public(procedure) {
		if !s.allow("addr:" + hostOf(peer)) {
			return ctx, fail(mlsdv1.Error_REASON_RATE_LIMITED, "too many authentication requests from this address; retry after a pause")
		}
		return ctx, nil
	}
	sess, err := s.session(ctx, header("Authorization"))
	if err != nil {
		return ctx, err
	}
	if !s.allow("id:" + string(sess.Identity)) {
		return ctx, fail(mlsdv1.Error_REASON_RATE_LIMITED, "too many requests from this client; retry after a pause")
	}
	return context.WithValue(ctx, sessionKey{}, sess), nil
}

func (s *Server) allow(key string) bool {
	return s.limiter == nil || s.limiter.allow(key)
}

// session resolves a bearer token to its session: from the in-memory cache,
// else from the Store (where another replica may have created it).
func (s *Server) session(ctx context.Context, authz string) (Session, error) {
	const prefix = "Bearer "
	if len(authz) <= len(prefix) || !strings.EqualFold(authz[:len(prefix)], prefix) || len(authz) > 1024 {
		return Session{}, fail(mlsdv1.Error_REASON_UNAUTHENTICATED, "no bearer token: call Challenge and Authenticate first")
	}
	h := sha256.Sum256([]byte(strings.TrimSpace(authz[len(prefix):])))
	now := s.now()
	s.sessMu.Lock()
	sess, ok := s.sessions[string(h[:])]
	s.sessMu.Unlock()
	if ok && now.Before(sess.Expires) {
		return sess, nil
	}
	sess, err := s.store.GetSession(ctx, h[:], now)
	if errors.Is(err, ErrNotFound) {
		return Session{}, fail(mlsdv1.Error_REASON_UNAUTHENTICATED, "unknown or expired token: authenticate again")
	}
	if err != nil {
		return Session{}, err
	}
	if !now.Before(sess.Expires) {
		return Session{}, fail(mlsdv1.Error_REASON_UNAUTHENTICATED, "expired token: authenticate again")
	}
	s.cacheSession(sess)
	return sess, nil
}

// maxCachedSessions bounds the session cache; when full it is emptied
// (sessions are in the Store; the cache only saves a read).
const maxCachedSessions = 1 << 14

func (s *Server) cacheSession(sess Session) {
	s.sessMu.Lock()
	defer s.sessMu.Unlock()
	if len(s.sessions) >= maxCachedSessions {
		clear(s.sessions)
	}
	s.sessions[string(sess.TokenHash)] = sess
}

func hostOf(addr string) string {
	if h, _, err := net.SplitHostPort(addr); err == nil {
		return h
	}
	return addr
}

func (i *interceptor) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		s := i.s
		proc := req.Spec().Procedure
		start := time.Now()
		ctx, err := s.admit(ctx, proc, req.Header().Get, req.Peer().Addr)
		var res connect.AnyResponse
		if err == nil {
			res, err = next(ctx, req)
		}
		err = s.toConnect(ctx, proc, err)
		s.metrics.observe(rpcName(proc), err, time.Since(start))
		return res, err
	}
}

func (i *interceptor) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return next
}

func (i *interceptor) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return func(ctx context.Context, conn connect.StreamingHandlerConn) error {
		s := i.s
		proc := conn.Spec().Procedure
		start := time.Now()
		ctx, err := s.admit(ctx, proc, conn.RequestHeader().Get, conn.Peer().Addr)
		if err == nil {
			s.metrics.streams.Inc()
			err = next(ctx, conn)
			s.metrics.streams.Dec()
		}
		err = s.toConnect(ctx, proc, err)
		s.metrics.observe(rpcName(proc), err, time.Since(start))
		return err
	}
}
