package mls

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/mlskit/mls/ciphersuite"
	"github.com/mlskit/mls/internal/framing"
	"github.com/mlskit/mls/internal/wire"
	"github.com/mlskit/mls/storage"
)

// This file puts the errors of the layers below (wire decoding, cipher
// suites, storage backends) into the classes that errors.go documents. The
// exported functions call classify (or the narrower helpers) at a few
// chokepoints instead of wrapping each call site.

// classError is an error of a lower layer put into one class. Unwrap
// returns both, so errors.Is matches the class and errors.As still finds
// the original (a *wire.Error with its offset, a *storage.Error, a
// *ciphersuite.UnsupportedError).
type classError struct {
	class error
	err   error
}

func (e *classError) Error() string   { return e.class.Error() + ": " + e.err.Error() }
func (e *classError) Unwrap() []error { return []error{e.class, e.err} }

// classes are the sentinels of errors.go that make an error classified.
var classes = []error{
	ErrMalformed, ErrUnsupported, ErrValidation, ErrDecrypt, ErrReplayed,
	ErrStaleState, ErrNotFound, ErrCorruptState, ErrStorage, ErrInvalidArgument,
	ErrPendingCommit, ErrNoPendingCommit, ErrInactive,
	context.Canceled, context.DeadlineExceeded,
}

// classified reports whether err already matches a class (or is the
// caller's context ending, which passes through).
func classified(err error) bool {
	for _, c := range classes {
		if errors.Is(err, c) {
			return true
		}
	}
	return false
}

// classify returns err in its class: a wire decoding error becomes
// ErrMalformed, an unknown cipher suite ErrUnsupported, a failed signer
// ErrInvalidArgument, a store failure ErrStorage or ErrCorruptState. Errors that already have a class, and
// errors it does not recognise, come back unchanged.
func classify(err error) error {
	if err == nil || classified(err) {
		return err
	}
	var we *wire.Error
	var se *storage.Error
	switch {
	case errors.Is(err, ciphersuite.ErrUnsupported):
		return &classError{ErrUnsupported, err}
	case errors.Is(err, ciphersuite.ErrSigner), errors.Is(err, framing.ErrInvalidArgument):
		// The caller's signer is missing or failed: an unusable argument.
		return &classError{ErrInvalidArgument, err}
	case errors.As(err, &we):
		return &classError{ErrMalformed, err}
	case errors.As(err, &se):
		return storeErr(err)
	}
	return err
}

// malformed is classify for the result of decoding received bytes: any
// failure that is not already classified is ErrMalformed.
func malformed(err error) error {
	if err == nil || classified(err) {
		return err
	}
	if errors.Is(err, ciphersuite.ErrUnsupported) {
		return &classError{ErrUnsupported, err}
	}
	return &classError{ErrMalformed, err}
}

// storeErr classifies the error of a Store's View or Update. The functions
// passed to View and Update return classified errors, so anything else
// comes from the store: damaged data (storage.ErrCorrupt) is
// ErrCorruptState, a missing key that no caller translated is ErrNotFound,
// and the rest (a closed store, a lock timeout, I/O) is ErrStorage. A
// context error passes through, wrapped in the store's *storage.Error.
func storeErr(err error) error {
	switch {
	case err == nil || classified(err):
		return err
	case errors.Is(err, storage.ErrCorrupt):
		return &classError{ErrCorruptState, err}
	case errors.Is(err, storage.ErrNotFound):
		return &classError{ErrNotFound, err}
	}
	return &classError{ErrStorage, err}
}

// update is store.Update with its error classified by storeErr. Every
// read-write transaction of this package goes through it.
func update(ctx context.Context, store storage.Store, fn func(storage.Tx) error) error {
	return storeErr(store.Update(ctx, fn))
}

// view is store.View with its error classified by storeErr. Every
// read-only transaction of this package goes through it.
func view(ctx context.Context, store storage.Store, fn func(storage.Tx) error) error {
	return storeErr(store.View(ctx, fn))
}

// lookupSuite is ciphersuite.Lookup for a suite named by input or by the
// caller: an unknown ID is ErrUnsupported.
func lookupSuite(id ciphersuite.ID) (*ciphersuite.Suite, error) {
	s, err := ciphersuite.Lookup(id)
	if err != nil {
		return nil, &classError{ErrUnsupported, err}
	}
	return s, nil
}

// randSource is a caller's randomness source (JoinConfig.Rand,
// KeyPackageOptions.Rand) whose failures are ErrInvalidArgument, like
// those of a failing signer: whatever wraps them on the way up, the class
// stays in the chain.
type randSource struct{ r io.Reader }

func (s randSource) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if err != nil && !classified(err) {
		err = &classError{ErrInvalidArgument, fmt.Errorf("randomness source: %w", err)}
	}
	return n, err
}
