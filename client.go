package mls

import (
	"context"
	"crypto"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"
	"weak"

	"github.com/mlskit/mls/ciphersuite"
	"github.com/mlskit/mls/credential"
	"github.com/mlskit/mls/internal/state"
	"github.com/mlskit/mls/storage"
)

// Client is one MLS client (RFC 9420, Section 3): an identity (a credential
// and the signature key bound to it), the store that keeps its key packages
// and groups, the credential validator that is its Authentication Service
// (Section 5.3.1), and its policy (clock, randomness, limits). It is built
// once with NewClient and is the only way to create key packages and to
// create, join, load, list and delete groups, so that every Group carries
// the client's policy: no code path opens a group without a validator.
//
// In the spirit of mls-rs's Client and OpenMLS's provider, a Client hands out
// at most one live *Group per stored group: LoadGroup returns the handle
// already in use when there is one. A handle of another Client, or of
// another process, on the same store is detected when it saves: see
// ErrStaleState.
//
// A Client is safe for concurrent use.
type Client struct {
	store     storage.Store
	cred      credential.Credential
	signer    crypto.Signer
	validator credential.Validator
	opts      ClientOptions

	mu   sync.Mutex
	live map[string]weak.Pointer[Group]
}

// ClientOptions are a Client's policy. The zero value is a usable policy.
type ClientOptions struct {
	// Now is the clock for lifetimes (RFC 9420, Section 7.3); nil means
	// time.Now.
	Now func() time.Time
	// Rand is the source of randomness; nil means crypto/rand. Tests inject
	// a deterministic reader.
	Rand io.Reader
	// Lifetime is the lifetime of new key packages and leaf nodes; zero
	// means 90 days.
	Lifetime time.Duration
	// MaxTreeLeaves caps the ratchet trees this client accepts from others
	// (Welcome, GroupInfo, out-of-band trees): a larger tree is rejected as
	// malformed before any of it is hashed. Zero means DefaultMaxTreeLeaves.
	MaxTreeLeaves uint32
	// WireFormatPolicy is the framing policy of the groups this client
	// creates or joins whose JoinConfig leaves WireFormatPolicy zero (RFC
	// 9420, Section 6); its own zero value sends handshakes as
	// PublicMessage and accepts both framings.
	WireFormatPolicy WireFormatPolicy
	// SignatureSuite is the cipher suite whose signature scheme a generated
	// signature key uses (NewClient with a nil signer); zero means
	// MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519 (Ed25519).
	SignatureSuite CipherSuite
	// DisableGREASE stops the client from adding GREASE values (RFC 9420,
	// Section 13.5) to the key packages and leaf nodes it creates; see
	// grease.go. They are on by default, as the RFC recommends.
	DisableGREASE bool
	// AppData is the application logic of the components that
	// AppDataUpdate proposals update (draft-ietf-mls-extensions, "Updating
	// Application Data in the GroupContext"); see AppDataFunc. Nil means
	// ReplaceAppData: every component is known and an update replaces
	// its data.
	AppData AppDataFunc
}

// DefaultMaxTreeLeaves is the default of ClientOptions.MaxTreeLeaves: 2^20
// leaves, enough for groups of a million members.
const DefaultMaxTreeLeaves = 1 << 20

// NewClient builds a client. cred is the client's credential. signer is its
// signature key: any crypto.Signer that fits the cipher suites it will use
// (ed25519.PrivateKey, *ecdsa.PrivateKey, a key in an HSM or KMS), or nil,
// in which case the client uses the software key it generated and kept in
// store on an earlier run, and generates and stores one (for
// opts.SignatureSuite) on the first. validator authenticates every
// credential the client's groups see; it is required: pass
// credential.AcceptAll to accept every credential, which only suits tests
// and demos.
func NewClient(ctx context.Context, store storage.Store, cred credential.Credential, signer crypto.Signer, validator credential.Validator, opts ClientOptions) (*Client, error) {
	if ctx == nil || store == nil || validator == nil {
		return nil, fmt.Errorf("%w: NewClient needs a context, a store and a validator (credential.AcceptAll to accept all)", ErrInvalidArgument)
	}
	if cred.Type() == 0 {
		return nil, fmt.Errorf("%w: empty credential", ErrInvalidArgument)
	}
	c := &Client{store: store, cred: cred, signer: signer, validator: validator, opts: opts, live: map[string]weak.Pointer[Group]{}}
	if signer == nil {
		var err error
		if c.signer, err = c.storedSigner(ctx); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// storedSigner loads the client's generated signature key, or generates and
// stores one.
func (c *Client) storedSigner(ctx context.Context) (crypto.Signer, error) {
	var signer crypto.Signer
	err := update(ctx, c.store, func(tx storage.Tx) error {
		r, err := state.Signer(tx)
		if err == nil {
			signer, err = signerOf(r)
			return err
		}
		if !errors.Is(err, storage.ErrNotFound) {
			return err
		}
		id := c.opts.SignatureSuite
		if id == 0 {
			id = MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519
		}
		s, err := ciphersuite.Lookup(id)
		if err != nil {
			return fmt.Errorf("%w: %w", ErrUnsupported, err)
		}
		if signer, err = s.GenerateSignatureKey(c.rand()); err != nil {
			return err
		}
		priv, err := s.MarshalSigner(signer)
		if err != nil {
			return err
		}
		return state.PutSigner(tx, &state.SignerRecord{Suite: uint16(id), PrivateKey: priv})
	})
	if err != nil {
		return nil, storeErr(err)
	}
	return signer, nil
}

// signerOf rebuilds the client's stored signature key.
func signerOf(r *state.SignerRecord) (crypto.Signer, error) {
	s, err := ciphersuite.Lookup(ciphersuite.ID(r.Suite))
	if err != nil {
		return nil, corrupt(nil, "client signature key", err)
	}
	signer, err := s.NewSigner(r.PrivateKey)
	if err != nil {
		return nil, corrupt(nil, "client signature key", err)
	}
	return signer, nil
}

// Credential returns the client's credential.
func (c *Client) Credential() credential.Credential { return c.cred }

// Signer returns the client's signature key.
func (c *Client) Signer() crypto.Signer { return c.signer }

// SignatureKey returns the client's signature public key in the encoding of
// suite's signature scheme (RFC 9420, Section 5.1.2).
func (c *Client) SignatureKey(suite CipherSuite) ([]byte, error) {
	s, err := lookupSuite(suite)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUnsupported, err)
	}
	pub, err := s.SignaturePublicKey(c.signer)
	if err != nil {
		return nil, fmt.Errorf("%w: the client's key does not fit suite %v: %w", ErrInvalidArgument, suite, err)
	}
	return pub, nil
}

// Store returns the client's store.
func (c *Client) Store() storage.Store { return c.store }

func (c *Client) identity() Identity { return Identity{Credential: c.cred, Signer: c.signer} }

func (c *Client) now() time.Time {
	if c.opts.Now != nil {
		return c.opts.Now()
	}
	return time.Now()
}

func (c *Client) rand() io.Reader {
	if c.opts.Rand != nil {
		return randSource{c.opts.Rand}
	}
	return rand.Reader
}

func (c *Client) maxTreeLeaves() uint32 {
	if c.opts.MaxTreeLeaves != 0 {
		return c.opts.MaxTreeLeaves
	}
	return DefaultMaxTreeLeaves
}

// policy fills in the parts of a JoinConfig that come from the client: the
// client itself (validator, clock, randomness, limits) and, when cfg leaves
// it zero, the client's wire format policy.
func (c *Client) policy(cfg JoinConfig) JoinConfig {
	cfg.client = c
	if cfg.WireFormatPolicy == (WireFormatPolicy{}) {
		cfg.WireFormatPolicy = c.opts.WireFormatPolicy
	}
	return cfg
}

// adopt records g as the live handle of its group and returns it.
func (c *Client) adopt(g *Group) *Group {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.live[string(g.st.GC.GroupID)] = weak.Make(g)
	return g
}

// handle returns the live handle of a group, if any and still usable.
func (c *Client) handle(groupID []byte) *Group {
	c.mu.Lock()
	defer c.mu.Unlock()
	w, ok := c.live[string(groupID)]
	if !ok {
		return nil
	}
	g := w.Value()
	if g == nil {
		delete(c.live, string(groupID))
		return nil
	}
	g.mu.Lock()
	usable := !g.stale && !g.deleted
	g.mu.Unlock()
	if !usable {
		delete(c.live, string(groupID))
		return nil
	}
	return g
}

// NewKeyPackage creates a key package for suite (RFC 9420, Section 10),
// signs it with the client's key, and stores its private keys, where
// StageWelcome finds them.
func (c *Client) NewKeyPackage(ctx context.Context, suite CipherSuite, opts KeyPackageOptions) (*KeyPackage, error) {
	if ctx == nil {
		return nil, fmt.Errorf("%w: nil context", ErrInvalidArgument)
	}
	kp, err := newKeyPackage(ctx, c, suite, opts)
	return kp, classify(err)
}

// KeyPackages lists the key packages whose private keys the client holds:
// those not used yet, and the last-resort ones.
func (c *Client) KeyPackages(ctx context.Context) ([]*KeyPackage, error) {
	var out []*KeyPackage
	err := view(ctx, c.store, func(tx storage.Tx) error {
		return state.KeyPackages(tx, func(k []byte, rec *state.KeyPackageRecord, err error) error {
			if err != nil {
				return err
			}
			kp, err := ParseKeyPackage(rec.KeyPackage)
			if err != nil {
				return corrupt(nil, fmt.Sprintf("key package %x", k), err)
			}
			out = append(out, kp)
			return nil
		})
	})
	if err != nil {
		return nil, storeErr(err)
	}
	return out, nil
}

// DeleteKeyPackage deletes a key package's private keys, so that a Welcome
// to it can no longer be read. It returns ErrNotFound if the client holds
// no such key package.
func (c *Client) DeleteKeyPackage(ctx context.Context, ref []byte) error {
	if len(ref) == 0 {
		return fmt.Errorf("%w: empty key package reference", ErrInvalidArgument)
	}
	return (update(ctx, c.store, func(tx storage.Tx) error {
		if _, err := tx.Get(state.BucketKeyPackages, ref); errors.Is(err, storage.ErrNotFound) {
			return fmt.Errorf("%w: key package %x", ErrNotFound, ref)
		} else if err != nil {
			return err
		}
		return state.DeleteKeyPackage(tx, ref)
	}))
}

// PruneKeyPackages deletes the key packages whose lifetime has ended (RFC
// 9420, Section 7.3), last-resort ones included, and returns how many it
// deleted. Key packages that cannot be read are left for DeleteKeyPackage.
func (c *Client) PruneKeyPackages(ctx context.Context) (int, error) {
	if ctx == nil {
		return 0, fmt.Errorf("%w: nil context", ErrInvalidArgument)
	}
	n := 0
	err := update(ctx, c.store, func(tx storage.Tx) error {
		var err error
		n, err = c.pruneKeyPackages(tx)
		return err
	})
	if err != nil {
		return 0, storeErr(err)
	}
	return n, nil
}

// pruneKeyPackages is PruneKeyPackages in a transaction. It reads every
// stored key package, so NewKeyPackage does not run it: an application
// calls PruneKeyPackages when it replenishes its key packages.
func (c *Client) pruneKeyPackages(tx storage.Tx) (int, error) {
	now := uint64(c.now().Unix())
	var expired [][]byte
	err := state.KeyPackages(tx, func(k []byte, rec *state.KeyPackageRecord, err error) error {
		if err != nil {
			return nil
		}
		kp, err := ParseKeyPackage(rec.KeyPackage)
		if err != nil {
			return nil
		}
		if kp.kp.LeafNode.Lifetime.NotAfter < now {
			expired = append(expired, k)
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	for _, k := range expired {
		if err := state.DeleteKeyPackage(tx, k); err != nil {
			return 0, err
		}
	}
	return len(expired), nil
}

// ImportKeyPackage stores a key package created elsewhere together with its
// private keys (the HPKE init key and the leaf encryption key, in the
// suite's SerializePrivateKey format), so that StageWelcome can use it. It
// is meant for interop harnesses, test vectors and migrations; normal
// clients use NewKeyPackage.
func (c *Client) ImportKeyPackage(ctx context.Context, keyPackage, initPriv, encryptionPriv []byte, lastResort bool) (*KeyPackage, error) {
	kp, err := importKeyPackage(ctx, c.store, keyPackage, initPriv, encryptionPriv, lastResort)
	return kp, classify(err)
}

// StorePSK stores an external pre-shared key (RFC 9420, Section 8.4) under
// its ID, for commits and Welcomes that use it.
func (c *Client) StorePSK(ctx context.Context, id, secret []byte) error {
	if len(id) == 0 || len(secret) == 0 {
		return fmt.Errorf("%w: empty PSK id or secret", ErrInvalidArgument)
	}
	return update(ctx, c.store, func(tx storage.Tx) error { return state.PutPSK(tx, id, secret) })
}

// CreateGroup creates a one-member group of suite (RFC 9420, Section 11)
// with the client as its creator, and stores it. A group with the same ID
// in the client's store is an error (ErrInvalidArgument).
func (c *Client) CreateGroup(ctx context.Context, suite CipherSuite, cfg GroupConfig) (*Group, error) {
	if ctx == nil {
		return nil, fmt.Errorf("%w: nil context", ErrInvalidArgument)
	}
	cfg.JoinConfig = c.policy(cfg.JoinConfig)
	g, err := createGroup(ctx, c, suite, cfg)
	if err != nil {
		return nil, classify(err)
	}
	return c.adopt(g), nil
}

// StageWelcome decrypts a Welcome with one of the client's key packages,
// verifies the GroupInfo, the ratchet tree and the key schedule (RFC 9420,
// Section 12.4.3.1), and returns the staged group for inspection. Nothing
// is stored until StagedWelcome.Join.
func (c *Client) StageWelcome(ctx context.Context, welcome *Message, opts WelcomeOptions) (*StagedWelcome, error) {
	if ctx == nil {
		return nil, fmt.Errorf("%w: nil context", ErrInvalidArgument)
	}
	opts.JoinConfig = c.policy(opts.JoinConfig)
	sw, err := stageWelcome(ctx, c, welcome, opts)
	return sw, classify(err)
}

// JoinExternal joins a group with an external commit (RFC 9420, Section
// 12.4.3.2); see ExternalJoinOptions and the documentation of the steps on
// joinExternal.
func (c *Client) JoinExternal(ctx context.Context, groupInfo *Message, opts ExternalJoinOptions) (*Group, *CommitResult, error) {
	if ctx == nil {
		return nil, nil, fmt.Errorf("%w: nil context", ErrInvalidArgument)
	}
	opts.JoinConfig = c.policy(opts.JoinConfig)
	g, res, err := joinExternal(ctx, c, groupInfo, opts)
	if err != nil {
		return nil, nil, classify(err)
	}
	return c.adopt(g), res, nil
}

// LoadGroup returns the client's group with the given ID as the last state
// change left it: the handle already in use if there is one, otherwise the
// group loaded from the store, with the client's signer and policy. A
// stored state that cannot be decoded or does not fit together gives a
// *CorruptStateError (ErrCorruptState); a group the store does not hold,
// ErrNotFound.
func (c *Client) LoadGroup(ctx context.Context, groupID []byte) (*Group, error) {
	return c.LoadGroupWithSigner(ctx, groupID, c.signer)
}

// LoadGroupWithSigner is LoadGroup for a group in which the member signs
// with another key than the client's, after SelfUpdateWithNewSigner. While
// a pending commit moves the member to a new key, either key is accepted;
// signing with the other one fails until the group is loaded again with it.
func (c *Client) LoadGroupWithSigner(ctx context.Context, groupID []byte, signer crypto.Signer) (*Group, error) {
	if ctx == nil || len(groupID) == 0 || signer == nil {
		return nil, fmt.Errorf("%w: LoadGroup needs a context, a group ID and a signer", ErrInvalidArgument)
	}
	if g := c.handle(groupID); g != nil {
		if err := g.useSigner(signer); err != nil {
			return nil, err
		}
		return g, nil
	}
	g, err := loadGroup(ctx, c, groupID, signer)
	if err != nil {
		return nil, classify(err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	// Another goroutine may have loaded it meanwhile: keep one handle.
	if w, ok := c.live[string(groupID)]; ok {
		if h := w.Value(); h != nil {
			h.mu.Lock()
			usable := !h.stale && !h.deleted && h.version == g.version
			h.mu.Unlock()
			if usable {
				return h, nil
			}
		}
	}
	c.live[string(groupID)] = weak.Make(g)
	return g, nil
}

// useSigner installs signer in a live handle if it is not the one in use.
func (g *Group) useSigner(signer crypto.Signer) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.signer != nil && samePublic(g.signer, signer) {
		return nil
	}
	return g.setSigner(signer)
}

func samePublic(a, b crypto.Signer) bool {
	type equaler interface{ Equal(crypto.PublicKey) bool }
	pa, ok := a.Public().(equaler)
	return ok && pa.Equal(b.Public())
}

// Groups lists the IDs of the groups in the client's store, in byte order,
// including groups the client was removed from (Group.IsActive reports
// false for them) until DeleteGroup.
func (c *Client) Groups(ctx context.Context) ([][]byte, error) {
	if ctx == nil {
		return nil, fmt.Errorf("%w: nil context", ErrInvalidArgument)
	}
	var ids [][]byte
	err := view(ctx, c.store, func(tx storage.Tx) error {
		var err error
		ids, err = state.GroupIDs(tx)
		return err
	})
	if err != nil {
		return nil, storeErr(err)
	}
	return ids, nil
}

// DeleteGroup deletes every record of a group from the store, its secrets
// included, in one transaction. A live handle of the group refuses every
// further operation. It returns ErrNotFound for a group the store does not
// hold.
func (c *Client) DeleteGroup(ctx context.Context, groupID []byte) error {
	if ctx == nil || len(groupID) == 0 {
		return fmt.Errorf("%w: DeleteGroup needs a context and a group ID", ErrInvalidArgument)
	}
	err := update(ctx, c.store, func(tx storage.Tx) error {
		if ok, err := state.HasGroup(tx, groupID); err != nil {
			return err
		} else if !ok {
			return fmt.Errorf("%w: group %x", ErrNotFound, groupID)
		}
		return state.DeleteGroup(tx, groupID)
	})
	if err != nil {
		return storeErr(err)
	}
	c.mu.Lock()
	if w, ok := c.live[string(groupID)]; ok {
		if g := w.Value(); g != nil {
			g.mu.Lock()
			g.deleted = true
			g.mu.Unlock()
		}
		delete(c.live, string(groupID))
	}
	c.mu.Unlock()
	return nil
}

// update runs fn in a transaction that first checks the group's version and
// then advances it: the one way a Group writes to its store. The version
// (see state.Version) is what keeps two handles (goroutines, processes, a
// retry after a timeout) from both advancing one stored state: the second
// gets ErrStaleState and writes nothing. This is what keeps a key and
// nonce from encrypting two messages (RFC 9420, Section 9.2: each
// generation's key is used once). A group being
// created or joined (g.version == 0) takes over whatever is stored; its
// first version is random, so that a handle of a deleted group never
// matches a group created again under the same ID.
func (g *Group) update(ctx context.Context, groupID []byte, fn func(storage.Tx) error) error {
	if g.stale {
		return fmt.Errorf("%w: group %x", ErrStaleState, groupID)
	}
	var next uint64
	err := g.store.Update(ctx, func(tx storage.Tx) error {
		version, putVersion := state.Version, state.PutVersion
		if g.public {
			version, putVersion = state.PublicVersion, state.PutPublicVersion
		}
		cur, err := version(tx, groupID)
		if err != nil {
			return err
		}
		switch {
		case g.version == 0:
			var b [8]byte
			if _, err := io.ReadFull(rand.Reader, b[:]); err != nil {
				return err
			}
			next = binary.BigEndian.Uint64(b[:])>>1 | 1
		case cur != g.version:
			return fmt.Errorf("%w: group %x is at version %d in the store, this handle at %d", ErrStaleState, groupID, cur, g.version)
		default:
			next = cur + 1
		}
		if err := fn(tx); err != nil {
			return err
		}
		return putVersion(tx, groupID, next)
	})
	if errors.Is(err, ErrStaleState) {
		g.stale = true
		return err
	}
	if err != nil {
		return storeErr(err)
	}
	g.version = next
	return nil
}

// checkCall is checkHandle for methods that take a context, which must not
// be nil.
func (g *Group) checkCall(ctx context.Context) error {
	if ctx == nil {
		return fmt.Errorf("%w: nil context", ErrInvalidArgument)
	}
	return g.checkHandle()
}

// checkHandle refuses operations on a handle that another writer overtook
// or whose group was deleted.
func (g *Group) checkHandle() error {
	if g.stale {
		return fmt.Errorf("%w: group %x", ErrStaleState, g.st.GC.GroupID)
	}
	if g.deleted {
		return fmt.Errorf("%w: group %x was deleted", ErrNotFound, g.st.GC.GroupID)
	}
	return nil
}
