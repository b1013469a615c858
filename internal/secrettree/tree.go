package secrettree

import (
	"fmt"
	"math"
	"sync"

	"github.com/mlskit/mls/ciphersuite"
	"github.com/mlskit/mls/internal/treemath"
)

// RatchetType selects one of the two hash ratchets of a leaf (RFC 9420,
// Section 9): the handshake ratchet protects proposals and commits sent as
// PrivateMessage, the application ratchet application data.
type RatchetType uint8

const (
	Handshake RatchetType = iota
	Application
)

// String returns "handshake" or "application".
func (t RatchetType) String() string {
	switch t {
	case Handshake:
		return "handshake"
	case Application:
		return "application"
	}
	return fmt.Sprintf("RatchetType(%d)", uint8(t))
}

// label is the ExpandWithLabel label that derives the ratchet's first
// secret from the leaf secret (RFC 9420, Section 9).
func (t RatchetType) label() string {
	if t == Handshake {
		return "handshake"
	}
	return "application"
}

// Defaults for Config, the same as OpenMLS's sender ratchet configuration.
const (
	DefaultOutOfOrderTolerance = 5
	DefaultMaxForwardDistance  = 1000
)

// MaxLeaves is the largest leaf count a tree may have: its node width,
// 2*MaxLeaves-1, must fit a uint32 node index.
const MaxLeaves = 1 << 31

// Config bounds the receiving side of the sender ratchets. RFC 9420,
// Section 9.2 allows keeping unconsumed keys "for some reasonable amount of
// time to handle out-of-order message delivery", and Section 15.3 asks
// applications to limit both how many such keys are kept and how far a
// message may move the ratchet forward; these two numbers are those limits.
type Config struct {
	// OutOfOrderTolerance is how many generations below the highest
	// consumed one stay decryptable: after generation H was consumed, the
	// keys of unconsumed generations H-OutOfOrderTolerance .. H-1 are kept
	// and older ones deleted. Zero means DefaultOutOfOrderTolerance.
	OutOfOrderTolerance uint32
	// MaxForwardDistance is how far beyond the next expected generation a
	// received generation may be. Zero means DefaultMaxForwardDistance.
	MaxForwardDistance uint32
}

func (c Config) normalize() Config {
	if c.OutOfOrderTolerance == 0 {
		c.OutOfOrderTolerance = DefaultOutOfOrderTolerance
	}
	if c.MaxForwardDistance == 0 {
		c.MaxForwardDistance = DefaultMaxForwardDistance
	}
	return c
}

// KeyNonce is the AEAD key and nonce of one generation of a sender ratchet
// (RFC 9420, Section 9.1). It redacts Key and Nonce when printed.
type KeyNonce struct {
	Generation uint32
	Key, Nonce []byte
}

// String describes k without its key and nonce.
func (k KeyNonce) String() string {
	return fmt.Sprintf("secrettree.KeyNonce{Generation: %d, Key: REDACTED, Nonce: REDACTED}", k.Generation)
}

// GoString is String, so that %#v does not print the key either.
func (k KeyNonce) GoString() string { return k.String() }

// Format prints String for every verb.
func (k KeyNonce) Format(f fmt.State, verb rune) { fmt.Fprint(f, k.String()) }

func (k KeyNonce) clone() KeyNonce {
	return KeyNonce{Generation: k.Generation, Key: clone(k.Key), Nonce: clone(k.Nonce)}
}

func (k KeyNonce) wipe() {
	wipe(k.Key)
	wipe(k.Nonce)
}

// ratchet is one sender ratchet (RFC 9420, Section 9.1).
type ratchet struct {
	// next is the generation of secret: the next generation to send or
	// the lowest not yet reached when receiving. It is 2^32 once all
	// generations were used, and secret is then nil.
	next uint64
	// secret is ratchet_secret_[N]_[next].
	secret []byte
	// skipped holds the keys of generations below next that were
	// skipped and are still within the out-of-order window; nil when
	// there are none.
	skipped map[uint32]KeyNonce
}

func (r *ratchet) wipe() {
	wipe(r.secret)
	r.secret = nil
	for g, kn := range r.skipped {
		kn.wipe()
		delete(r.skipped, g)
	}
}

// leafState is the pair of ratchets of one leaf.
type leafState struct {
	r [2]ratchet // indexed by RatchetType
}

// Tree is the secret tree of one epoch (RFC 9420, Section 9). It is safe
// for concurrent use. It never prints its secrets.
type Tree struct {
	mu     sync.Mutex
	suite  *ciphersuite.Suite
	leaves uint32 // leaf count given to New; leaf indices must be below it
	size   uint32 // leaves rounded up to a power of two, for tree math
	cfg    Config // normalized
	// nodes holds the node secrets not yet split into their children:
	// at first only the root (encryption_secret). A node is present only
	// while none of its ancestors is, and while the leaves below it have
	// not been initialised.
	nodes map[treemath.NodeIndex][]byte
	// leafs holds the ratchets of the leaves initialised so far.
	leafs map[treemath.LeafIndex]*leafState
}

// New returns the secret tree for a group of leaves leaves whose root is
// encryptionSecret (RFC 9420, Section 9). encryptionSecret must be KDF.Nh
// bytes; it is copied, and the caller should delete its own copy
// (Section 9.2). leaves is the ratchet tree's leaf count; it is rounded up
// to a power of two for the tree shape, which does not change any secret
// because RFC 9420 trees always have a power-of-two leaf count.
func New(s *ciphersuite.Suite, encryptionSecret []byte, leaves uint32, cfg Config) (*Tree, error) {
	if s == nil {
		return nil, fmt.Errorf("secrettree: New: %w: nil cipher suite", ErrInvalidParameter)
	}
	if len(encryptionSecret) != s.HashSize() {
		return nil, fmt.Errorf("secrettree: New: %w: encryption_secret of %d bytes, want %d", ErrInvalidParameter, len(encryptionSecret), s.HashSize())
	}
	t, err := newEmpty(s, leaves, cfg)
	if err != nil {
		return nil, err
	}
	t.nodes[treemath.Root(t.size)] = clone(encryptionSecret)
	return t, nil
}

func newEmpty(s *ciphersuite.Suite, leaves uint32, cfg Config) (*Tree, error) {
	if leaves == 0 || leaves > MaxLeaves {
		return nil, fmt.Errorf("secrettree: %w: %d leaves, want 1 to %d", ErrInvalidParameter, leaves, uint32(MaxLeaves))
	}
	return &Tree{
		suite:  s,
		leaves: leaves,
		size:   pow2(leaves),
		cfg:    cfg.normalize(),
		nodes:  make(map[treemath.NodeIndex][]byte),
		leafs:  make(map[treemath.LeafIndex]*leafState),
	}, nil
}

// pow2 returns the smallest power of two >= n, for 1 <= n <= 2^31.
func pow2(n uint32) uint32 {
	p := uint32(1)
	for p < n {
		p <<= 1
	}
	return p
}

// Suite returns the tree's cipher suite.
func (t *Tree) Suite() *ciphersuite.Suite { return t.suite }

// Leaves returns the leaf count given to New.
func (t *Tree) Leaves() uint32 { return t.leaves }

// Config returns the configuration with defaults filled in.
func (t *Tree) Config() Config { return t.cfg }

// Initialized reports whether leaf's ratchets have been derived. A storage
// layer uses it to tell whether an operation on leaf changes the node
// secrets too (only the first one in an epoch does).
func (t *Tree) Initialized(leaf treemath.LeafIndex) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.leafs[leaf] != nil
}

// String describes the tree without any secret.
func (t *Tree) String() string {
	return fmt.Sprintf("secrettree.Tree{suite: %v, leaves: %d, secrets: REDACTED}", t.suite, t.leaves)
}

// GoString is String.
func (t *Tree) GoString() string { return t.String() }

// Format prints String for every verb.
func (t *Tree) Format(f fmt.State, verb rune) { fmt.Fprint(f, t.String()) }

// Erase deletes every secret the tree holds, at the end of the epoch. Any
// later operation fails with ErrUnavailable.
func (t *Tree) Erase() {
	t.mu.Lock()
	defer t.mu.Unlock()
	for x, s := range t.nodes {
		wipe(s)
		delete(t.nodes, x)
	}
	for l, st := range t.leafs {
		st.r[0].wipe()
		st.r[1].wipe()
		delete(t.leafs, l)
	}
}

func (t *Tree) check(op string, leaf treemath.LeafIndex, typ RatchetType) error {
	if typ > Application {
		return opErr(op, leaf, typ, ErrInvalidRatchetType)
	}
	if uint32(leaf) >= t.leaves {
		return opErr(op, leaf, typ, fmt.Errorf("%w: tree has %d leaves", ErrLeafOutOfRange, t.leaves))
	}
	return nil
}

// ancestorWithSecret returns the lowest node on the path from leaf to the
// root (the leaf included) whose secret is held.
func (t *Tree) ancestorWithSecret(leaf treemath.LeafIndex) (treemath.NodeIndex, bool) {
	x := leaf.Node()
	root := treemath.Root(t.size)
	for {
		if _, ok := t.nodes[x]; ok {
			return x, true
		}
		if x == root {
			return 0, false
		}
		x = treemath.Parent(x, t.size)
	}
}

// deriveChild implements the left/right derivation of RFC 9420, Section 9:
// tree_node_[child]_secret = ExpandWithLabel(parent, "tree", "left"/"right", KDF.Nh).
func (t *Tree) deriveChild(parent []byte, right bool) []byte {
	ctx := "left"
	if right {
		ctx = "right"
	}
	return t.suite.ExpandWithLabel(parent, "tree", []byte(ctx), t.suite.HashSize())
}

// peekLeafSecret returns the secret of an uninitialised leaf without
// changing the tree.
func (t *Tree) peekLeafSecret(leaf treemath.LeafIndex) ([]byte, bool) {
	a, ok := t.ancestorWithSecret(leaf)
	if !ok {
		return nil, false
	}
	x := leaf.Node()
	secret := clone(t.nodes[a])
	for cur := a; cur != x; {
		right := x > cur
		next := t.deriveChild(secret, right)
		wipe(secret)
		secret = next
		if right {
			cur = treemath.Right(cur)
		} else {
			cur = treemath.Left(cur)
		}
	}
	return secret, true
}

// initLeaf derives the ratchets of leaf, storing the copath secrets met on
// the way down and deleting every parent secret it splits and the leaf
// secret itself (RFC 9420, Section 9.2).
func (t *Tree) initLeaf(leaf treemath.LeafIndex) (*leafState, bool) {
	a, ok := t.ancestorWithSecret(leaf)
	if !ok {
		return nil, false
	}
	x := leaf.Node()
	secret := t.nodes[a]
	delete(t.nodes, a)
	for cur := a; cur != x; {
		l, r := t.deriveChild(secret, false), t.deriveChild(secret, true)
		wipe(secret)
		if x > cur {
			t.nodes[treemath.Left(cur)] = l
			secret, cur = r, treemath.Right(cur)
		} else {
			t.nodes[treemath.Right(cur)] = r
			secret, cur = l, treemath.Left(cur)
		}
	}
	st := &leafState{}
	for _, typ := range []RatchetType{Handshake, Application} {
		st.r[typ].secret = t.suite.ExpandWithLabel(secret, typ.label(), nil, t.suite.HashSize())
	}
	wipe(secret)
	t.leafs[leaf] = st
	return st, true
}

// ratchetFor returns leaf's ratchet of type typ, initialising the leaf if
// needed.
func (t *Tree) ratchetFor(op string, leaf treemath.LeafIndex, typ RatchetType) (*ratchet, error) {
	st := t.leafs[leaf]
	if st == nil {
		var ok bool
		if st, ok = t.initLeaf(leaf); !ok {
			return nil, opErr(op, leaf, typ, ErrUnavailable)
		}
	}
	return &st.r[typ], nil
}

// keys derives ratchet_key_[N]_[j] and ratchet_nonce_[N]_[j] (RFC 9420,
// Section 9.1).
func (t *Tree) keys(secret []byte, gen uint32) KeyNonce {
	return KeyNonce{
		Generation: gen,
		Key:        t.suite.DeriveTreeSecret(secret, "key", gen, t.suite.AEADKeySize()),
		Nonce:      t.suite.DeriveTreeSecret(secret, "nonce", gen, t.suite.AEADNonceSize()),
	}
}

// step derives ratchet_secret_[N]_[j+1] from ratchet_secret_[N]_[j].
func (t *Tree) step(secret []byte, gen uint32) []byte {
	return t.suite.DeriveTreeSecret(secret, "secret", gen, t.suite.HashSize())
}

// advance moves r past its current generation, deleting the used secret.
func (t *Tree) advance(r *ratchet) {
	gen := uint32(r.next)
	old := r.secret
	if r.next == math.MaxUint32 {
		r.secret = nil
	} else {
		r.secret = t.step(old, gen)
	}
	wipe(old)
	r.next++
}

// Next returns the key and nonce for the next message sent by leaf with the
// ratchet typ and advances that ratchet, deleting the used ratchet secret
// (RFC 9420, Sections 9.1 and 9.2). The caller must delete the key and
// nonce once the message is encrypted.
func (t *Tree) Next(leaf treemath.LeafIndex, typ RatchetType) (KeyNonce, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := t.check("Next", leaf, typ); err != nil {
		return KeyNonce{}, err
	}
	r, err := t.ratchetFor("Next", leaf, typ)
	if err != nil {
		return KeyNonce{}, err
	}
	if r.next > math.MaxUint32 {
		return KeyNonce{}, opErr("Next", leaf, typ, ErrExhausted)
	}
	kn := t.keys(r.secret, uint32(r.next))
	t.advance(r)
	return kn, nil
}

// Get returns the key and nonce of generation for a message received from
// leaf, without changing any state: a message that then fails to decrypt
// leaves the tree as it was. After a successful decryption call Consume.
//
// It fails with ErrGenerationUsed for a generation already consumed or
// whose key was deleted because it fell out of the out-of-order window,
// and with ErrTooFarAhead for one more than MaxForwardDistance beyond the
// next expected generation.
func (t *Tree) Get(leaf treemath.LeafIndex, typ RatchetType, generation uint32) (KeyNonce, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := t.check("Get", leaf, typ); err != nil {
		return KeyNonce{}, err
	}
	var base []byte // ratchet secret of generation from
	var from uint64
	if st := t.leafs[leaf]; st != nil {
		r := &st.r[typ]
		if uint64(generation) < r.next {
			kn, ok := r.skipped[generation]
			if !ok {
				return KeyNonce{}, genErr("Get", leaf, typ, generation, ErrGenerationUsed)
			}
			return kn.clone(), nil
		}
		if err := t.checkAhead("Get", leaf, typ, generation, r.next); err != nil {
			return KeyNonce{}, err
		}
		base, from = clone(r.secret), r.next
	} else {
		if err := t.checkAhead("Get", leaf, typ, generation, 0); err != nil {
			return KeyNonce{}, err
		}
		ls, ok := t.peekLeafSecret(leaf)
		if !ok {
			return KeyNonce{}, genErr("Get", leaf, typ, generation, ErrUnavailable)
		}
		base = t.suite.ExpandWithLabel(ls, typ.label(), nil, t.suite.HashSize())
		wipe(ls)
	}
	for g := from; g < uint64(generation); g++ {
		next := t.step(base, uint32(g))
		wipe(base)
		base = next
	}
	kn := t.keys(base, generation)
	wipe(base)
	return kn, nil
}

func (t *Tree) checkAhead(op string, leaf treemath.LeafIndex, typ RatchetType, generation uint32, next uint64) error {
	if uint64(generation)-next > uint64(t.cfg.MaxForwardDistance) {
		return genErr(op, leaf, typ, generation, fmt.Errorf("%w: next expected generation %d, maximum forward distance %d", ErrTooFarAhead, next, t.cfg.MaxForwardDistance))
	}
	return nil
}

// Consume records generation of leaf's ratchet typ as used after a message
// of that generation decrypted successfully (RFC 9420, Section 9.2): it
// deletes that generation's key, advances the ratchet past it, keeps the
// keys of skipped generations within OutOfOrderTolerance of it and deletes
// older ones. On error the tree is unchanged.
func (t *Tree) Consume(leaf treemath.LeafIndex, typ RatchetType, generation uint32) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := t.check("Consume", leaf, typ); err != nil {
		return err
	}
	st := t.leafs[leaf]
	if st == nil {
		// Check before initialising, so that a failure changes nothing.
		if err := t.checkAhead("Consume", leaf, typ, generation, 0); err != nil {
			return err
		}
		if _, ok := t.ancestorWithSecret(leaf); !ok {
			return genErr("Consume", leaf, typ, generation, ErrUnavailable)
		}
	}
	r, err := t.ratchetFor("Consume", leaf, typ)
	if err != nil {
		return err
	}
	if uint64(generation) < r.next {
		kn, ok := r.skipped[generation]
		if !ok {
			return genErr("Consume", leaf, typ, generation, ErrGenerationUsed)
		}
		kn.wipe()
		delete(r.skipped, generation)
		return nil
	}
	if err := t.checkAhead("Consume", leaf, typ, generation, r.next); err != nil {
		return err
	}
	tol := uint64(t.cfg.OutOfOrderTolerance)
	for r.next < uint64(generation) {
		g := uint32(r.next)
		if uint64(generation)-r.next <= tol {
			if r.skipped == nil {
				r.skipped = make(map[uint32]KeyNonce)
			}
			r.skipped[g] = t.keys(r.secret, g)
		}
		t.advance(r)
	}
	t.advance(r) // past generation itself; its key is not kept
	for g, kn := range r.skipped {
		if uint64(generation-g) > tol {
			kn.wipe()
			delete(r.skipped, g)
		}
	}
	return nil
}

func clone(b []byte) []byte {
	if b == nil {
		return nil
	}
	return append(make([]byte, 0, len(b)), b...)
}

// wipe overwrites a secret before it is dropped (best effort: the garbage
// collector may have moved earlier copies).
func wipe(b []byte) { clear(b) }

// SenderDataKeyNonce derives the key and nonce that protect a
// PrivateMessage's SenderData from sender_data_secret and the first KDF.Nh
// bytes of the content ciphertext, or all of it if shorter (RFC 9420,
// Section 6.3.2).
func SenderDataKeyNonce(s *ciphersuite.Suite, senderDataSecret, ciphertext []byte) (key, nonce []byte) {
	sample := ciphertext
	if len(sample) > s.HashSize() {
		sample = sample[:s.HashSize()]
	}
	key = s.ExpandWithLabel(senderDataSecret, "key", sample, s.AEADKeySize())
	nonce = s.ExpandWithLabel(senderDataSecret, "nonce", sample, s.AEADNonceSize())
	return key, nonce
}
