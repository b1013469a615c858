package ds

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"connectrpc.com/connect"

	"github.com/mlskit/mls"
	mlsdv1 "github.com/mlskit/mls/proto/mlsd/v1"
)

// rpcError is an error the server returns to a client on purpose: a Connect
// code for the class and an mlsd.v1.Error for the exact reason. Handlers
// build them with fail; toConnect turns every other error into one.
type rpcError struct {
	reason       mlsdv1.Error_Reason
	detail       string
	currentEpoch uint64
	lastSeq      uint64
	cause        error // for the log only, never sent
}

func (e *rpcError) Error() string {
	if e.cause != nil {
		return fmt.Sprintf("%v: %s: %v", e.reason, e.detail, e.cause)
	}
	return fmt.Sprintf("%v: %s", e.reason, e.detail)
}

func (e *rpcError) Unwrap() error { return e.cause }

// fail returns an rpcError with a formatted detail.
func fail(reason mlsdv1.Error_Reason, format string, args ...any) *rpcError {
	return &rpcError{reason: reason, detail: fmt.Sprintf(format, args...)}
}

// failWith returns an rpcError whose detail is the message and the cause;
// the cause of an MLS validation error names the rule that was broken, which
// is what the client needs to know.
func failWith(reason mlsdv1.Error_Reason, cause error, format string, args ...any) *rpcError {
	d := fmt.Sprintf(format, args...)
	if cause != nil {
		d += ": " + cause.Error()
	}
	return &rpcError{reason: reason, detail: d, cause: cause}
}

// conflict is COMMIT_CONFLICT or WRONG_EPOCH with the group's position.
func conflict(reason mlsdv1.Error_Reason, epoch, lastSeq uint64, format string, args ...any) *rpcError {
	e := fail(reason, format, args...)
	e.currentEpoch, e.lastSeq = epoch, lastSeq
	return e
}

// codeOf is the Connect code of each reason: the class a generic client
// acts on (gRPC status codes' meaning).
func codeOf(r mlsdv1.Error_Reason) connect.Code {
	switch r {
	case mlsdv1.Error_REASON_UNAUTHENTICATED:
		return connect.CodeUnauthenticated
	case mlsdv1.Error_REASON_NOT_MEMBER, mlsdv1.Error_REASON_EXTERNAL_JOIN_NOT_ALLOWED, mlsdv1.Error_REASON_NOT_OWNER:
		return connect.CodePermissionDenied
	case mlsdv1.Error_REASON_MALFORMED, mlsdv1.Error_REASON_INVALID_MESSAGE:
		return connect.CodeInvalidArgument
	case mlsdv1.Error_REASON_TOO_LARGE, mlsdv1.Error_REASON_RATE_LIMITED:
		return connect.CodeResourceExhausted
	case mlsdv1.Error_REASON_COMMIT_CONFLICT:
		// gRPC: "the operation was aborted, typically due to a concurrency
		// issue": retry at a higher level, after catching up.
		return connect.CodeAborted
	case mlsdv1.Error_REASON_WRONG_EPOCH:
		return connect.CodeFailedPrecondition
	case mlsdv1.Error_REASON_UNKNOWN_GROUP, mlsdv1.Error_REASON_NO_KEY_PACKAGE:
		return connect.CodeNotFound
	case mlsdv1.Error_REASON_GROUP_EXISTS:
		return connect.CodeAlreadyExists
	}
	return connect.CodeInternal
}

// classify maps an error from a Store, the MLS library or the context to an
// rpcError. It is the one place where the server decides what a failure
// means to the client; handlers may return any error.
func classify(err error) *rpcError {
	var re *rpcError
	if errors.As(err, &re) {
		return re
	}
	var ce *ConflictError
	if errors.As(err, &ce) {
		r := mlsdv1.Error_REASON_WRONG_EPOCH
		d := "the message is not for the group's current epoch"
		if errors.Is(ce.Err, ErrConflict) {
			r = mlsdv1.Error_REASON_COMMIT_CONFLICT
			d = "another commit was accepted for this epoch first: fetch, process and retry"
		}
		e := conflict(r, ce.CurrentEpoch, ce.LastSeq, "%s (current epoch %d)", d, ce.CurrentEpoch)
		e.cause = err
		return e
	}
	switch {
	case errors.Is(err, ErrGroupExists):
		return failWith(mlsdv1.Error_REASON_GROUP_EXISTS, nil, "a group with this ID is registered")
	case errors.Is(err, mls.ErrMalformed), errors.Is(err, mls.ErrUnsupported):
		return failWith(mlsdv1.Error_REASON_MALFORMED, err, "malformed")
	case errors.Is(err, mls.ErrValidation), errors.Is(err, mls.ErrInvalidArgument):
		return failWith(mlsdv1.Error_REASON_INVALID_MESSAGE, err, "invalid")
	}
	return &rpcError{detail: "internal error", cause: err}
}

// toConnect turns a handler's error into the Connect error sent to the
// client: the code of its reason and the mlsd.v1.Error detail. Internal
// errors are logged and sent without their cause; context errors keep
// Connect's codes.
func (s *Server) toConnect(ctx context.Context, procedure string, err error) error {
	if err == nil {
		return nil
	}
	var ce *connect.Error
	if errors.As(err, &ce) {
		return ce
	}
	if ctxErr := ctx.Err(); ctxErr != nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)) {
		return connect.NewError(connect.CodeOf(ctxErr), ctxErr)
	}
	re := classify(err)
	code := codeOf(re.reason)
	if re.reason == mlsdv1.Error_REASON_COMMIT_CONFLICT {
		s.metrics.conflicts.Inc()
	}
	if re.reason == mlsdv1.Error_REASON_UNSPECIFIED {
		s.log.ErrorContext(ctx, "internal error", "rpc", procedure, "err", err)
	} else {
		s.log.DebugContext(ctx, "request refused", "rpc", procedure, "reason", re.reason.String(), "detail", re.detail)
	}
	out := connect.NewError(code, errors.New(re.detail))
	if d, derr := connect.NewErrorDetail(&mlsdv1.Error{
		Reason: re.reason, CurrentEpoch: re.currentEpoch, LastSeq: re.lastSeq, Detail: re.detail,
	}); derr == nil {
		out.AddDetail(d)
	} else {
		s.log.ErrorContext(ctx, "encoding error detail", "err", derr)
	}
	return out
}

// ErrorReason returns the mlsd.v1.Error detail of an error returned by a
// Connect client of mlsd, or nil when it has none.
func ErrorReason(err error) *mlsdv1.Error {
	var ce *connect.Error
	if !errors.As(err, &ce) {
		return nil
	}
	for _, d := range ce.Details() {
		v, derr := d.Value()
		if derr != nil {
			continue
		}
		if e, ok := v.(*mlsdv1.Error); ok {
			return e
		}
	}
	return nil
}

// logAttrs is the slog attribute of a group ID.
func groupAttr(id []byte) slog.Attr { return slog.String("group", fmt.Sprintf("%x", id)) }
