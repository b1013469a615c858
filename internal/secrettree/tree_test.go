package secrettree

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/mlskit/mls/ciphersuite"
	"github.com/mlskit/mls/internal/treemath"
	"github.com/mlskit/mls/internal/vectors"
)

func suite(t testing.TB, id ciphersuite.ID) *ciphersuite.Suite {
	t.Helper()
	s, err := ciphersuite.Lookup(id)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func seq(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i + 1)
	}
	return b
}

func newTree(t testing.TB, s *ciphersuite.Suite, leaves uint32, cfg Config) *Tree {
	t.Helper()
	tr, err := New(s, seq(s.HashSize()), leaves, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

func state(t testing.TB, tr *Tree) []byte {
	t.Helper()
	b, err := tr.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Values from the official secret-tree.json, suite 1, 8 leaves, leaf 0.
func TestKnownAnswer(t *testing.T) {
	s := suite(t, 1)
	tr, err := New(s, unhex(t, "9d4ecb550dc4fbcbaae66d120a2215cbeca20d45d66791df5b4349eace30fd3f"), 8, Config{})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		typ        RatchetType
		gen        uint32
		key, nonce string
	}{
		{Application, 0, "dd3fbd3f880af22368f4232e7518d93b", "969933769978098b3eb6324a"},
		{Handshake, 0, "199d6d2b8810a8f6e81e80e49e6a29ce", "18f6c449223678070da1a24b"},
		{Application, 15, "3eddbdfcea44bf06aab8145c90e4e699", "4a12f22d9328a723cec85b8c"},
		{Handshake, 15, "e6c01a531c31e31faa37eaa6ec405cbd", "579ee05a5d60db32f9c8aef0"},
	} {
		kn, err := tr.Get(0, c.typ, c.gen)
		if err != nil {
			t.Fatal(err)
		}
		if kn.Generation != c.gen || hex.EncodeToString(kn.Key) != c.key || hex.EncodeToString(kn.Nonce) != c.nonce {
			t.Errorf("%v %d: got key %x nonce %x, want %s %s", c.typ, c.gen, kn.Key, kn.Nonce, c.key, c.nonce)
		}
	}
	key, nonce := SenderDataKeyNonce(s, unhex(t, "c1d2716789d55bd41e85316b455b7da70433898816e62b15216368d713d1d4fb"),
		unhex(t, "c32247575cc61ec993efcb78704012929d0569283f7ab1f85f048791f1170e2639cacf787be9a58e31a3a21f3f12523d32f8089eeaa0756f69a1488a4e87356ab50b700bf2222ff8b0b258f22d"))
	if hex.EncodeToString(key) != "ce20a37761e1152c56e0a6743aaeb520" || hex.EncodeToString(nonce) != "70f55f0f05fdd2d7459a50bc" {
		t.Errorf("sender data: got %x %x", key, nonce)
	}
}

// TestSecretTreeVectors runs every case of secret-tree.json through both
// the sender (Next) and the receiver (Get+Consume) side.
func TestSecretTreeVectors(t *testing.T) {
	dir, err := vectors.Dir()
	if err != nil {
		t.Fatal(err)
	}
	raw, err := vectors.Read(dir, "secret-tree.json")
	if errors.Is(err, vectors.ErrNotFound) && os.Getenv("CI") != "true" {
		t.Skip(err)
	} else if err != nil {
		t.Fatal(err)
	}
	var vs []struct {
		CipherSuite      ciphersuite.ID `json:"cipher_suite"`
		EncryptionSecret vectors.Hex    `json:"encryption_secret"`
		Leaves           [][]struct {
			Generation       uint32      `json:"generation"`
			HandshakeKey     vectors.Hex `json:"handshake_key"`
			HandshakeNonce   vectors.Hex `json:"handshake_nonce"`
			ApplicationKey   vectors.Hex `json:"application_key"`
			ApplicationNonce vectors.Hex `json:"application_nonce"`
		} `json:"leaves"`
	}
	if err := json.Unmarshal(raw, &vs); err != nil {
		t.Fatal(err)
	}
	if len(vs) == 0 {
		t.Fatal("no vectors")
	}
	for i, v := range vs {
		s := suite(t, v.CipherSuite)
		send, err := New(s, v.EncryptionSecret, uint32(len(v.Leaves)), Config{})
		if err != nil {
			t.Fatal(err)
		}
		recv, err := New(s, v.EncryptionSecret, uint32(len(v.Leaves)), Config{})
		if err != nil {
			t.Fatal(err)
		}
		for leaf, gens := range v.Leaves {
			for _, g := range gens {
				for _, c := range []struct {
					typ        RatchetType
					key, nonce []byte
				}{{Handshake, g.HandshakeKey, g.HandshakeNonce}, {Application, g.ApplicationKey, g.ApplicationNonce}} {
					var kn KeyNonce
					for {
						kn, err = send.Next(treemath.LeafIndex(leaf), c.typ)
						if err != nil || kn.Generation >= g.Generation {
							break
						}
					}
					if err != nil || kn.Generation != g.Generation || !bytes.Equal(kn.Key, c.key) || !bytes.Equal(kn.Nonce, c.nonce) {
						t.Errorf("vector %d leaf %d %v gen %d: Next gave %v %x %x, want %x %x", i, leaf, c.typ, g.Generation, err, kn.Key, kn.Nonce, c.key, c.nonce)
					}
					kn, err = recv.Get(treemath.LeafIndex(leaf), c.typ, g.Generation)
					if err != nil || !bytes.Equal(kn.Key, c.key) || !bytes.Equal(kn.Nonce, c.nonce) {
						t.Errorf("vector %d leaf %d %v gen %d: Get gave %v %x %x", i, leaf, c.typ, g.Generation, err, kn.Key, kn.Nonce)
					}
					if err := recv.Consume(treemath.LeafIndex(leaf), c.typ, g.Generation); err != nil {
						t.Errorf("vector %d leaf %d %v gen %d: Consume: %v", i, leaf, c.typ, g.Generation, err)
					}
				}
			}
		}
		// Every leaf was used, so every node secret is gone.
		if len(recv.nodes) != 0 || len(send.nodes) != 0 {
			t.Errorf("vector %d: %d / %d node secrets left after using every leaf", i, len(recv.nodes), len(send.nodes))
		}
	}
}

// TestDerivationByHand follows the formulas of RFC 9420, Section 9 with the
// suite's primitives for a four-leaf tree.
func TestDerivationByHand(t *testing.T) {
	for _, id := range ciphersuite.All() {
		s := suite(t, id)
		root := seq(s.HashSize())
		nh := s.HashSize()
		// Leaf 2 is node 4: root 3 -> right 5 -> left 4.
		n5 := s.ExpandWithLabel(root, "tree", []byte("right"), nh)
		n4 := s.ExpandWithLabel(n5, "tree", []byte("left"), nh)
		app0 := s.ExpandWithLabel(n4, "application", nil, nh)
		app1 := s.DeriveTreeSecret(app0, "secret", 0, nh)
		app2 := s.DeriveTreeSecret(app1, "secret", 1, nh)
		want := KeyNonce{Generation: 2, Key: s.DeriveTreeSecret(app2, "key", 2, s.AEADKeySize()), Nonce: s.DeriveTreeSecret(app2, "nonce", 2, s.AEADNonceSize())}
		hs0 := s.ExpandWithLabel(n4, "handshake", nil, nh)
		wantHS := s.DeriveTreeSecret(hs0, "key", 0, s.AEADKeySize())

		tr := newTree(t, s, 4, Config{})
		got, err := tr.Get(2, Application, 2)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got.Key, want.Key) || !bytes.Equal(got.Nonce, want.Nonce) || got.Generation != 2 {
			t.Errorf("%v: Get(2, application, 2) differs from the hand derivation", id)
		}
		for range 3 {
			if got, err = tr.Next(2, Application); err != nil {
				t.Fatal(err)
			}
		}
		if !bytes.Equal(got.Key, want.Key) || !bytes.Equal(got.Nonce, want.Nonce) || got.Generation != 2 {
			t.Errorf("%v: third Next differs from the hand derivation", id)
		}
		hs, err := tr.Next(2, Handshake)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(hs.Key, wantHS) || hs.Generation != 0 {
			t.Errorf("%v: handshake key 0 differs from the hand derivation", id)
		}
		// Deletion schedule: nodes 3 and 5 were split, leaf 2's secret
		// turned into its ratchets; what remains is node 1 (leaves 0, 1)
		// and node 6 (leaf 3).
		if got := sortedKeys(tr.nodes); fmt.Sprint(got) != "[1 6]" {
			t.Errorf("%v: node secrets held: %v, want [1 6]", id, got)
		}
		if !bytes.Equal(tr.nodes[1], s.ExpandWithLabel(root, "tree", []byte("left"), nh)) {
			t.Errorf("%v: node 1 secret wrong", id)
		}
		if !bytes.Equal(tr.nodes[6], s.ExpandWithLabel(n5, "tree", []byte("right"), nh)) {
			t.Errorf("%v: node 6 secret wrong", id)
		}
	}
}

func TestSingleLeaf(t *testing.T) {
	s := suite(t, 1)
	root := seq(32)
	tr := newTree(t, s, 1, Config{})
	kn, err := tr.Next(0, Handshake)
	if err != nil {
		t.Fatal(err)
	}
	hs := s.ExpandWithLabel(root, "handshake", nil, 32)
	if !bytes.Equal(kn.Key, s.DeriveTreeSecret(hs, "key", 0, 16)) {
		t.Error("a one-leaf tree must use encryption_secret as the leaf secret")
	}
	if len(tr.nodes) != 0 {
		t.Errorf("node secrets left: %v", sortedKeys(tr.nodes))
	}
	if _, err := tr.Next(1, Handshake); !errors.Is(err, ErrLeafOutOfRange) {
		t.Errorf("leaf 1 of 1: %v", err)
	}
}

func TestNonPowerOfTwo(t *testing.T) {
	s := suite(t, 1)
	five, eight := newTree(t, s, 5, Config{}), newTree(t, s, 8, Config{})
	a, err := five.Get(4, Application, 3)
	if err != nil {
		t.Fatal(err)
	}
	b, err := eight.Get(4, Application, 3)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Key, b.Key) {
		t.Error("5-leaf tree derives other secrets than the 8-leaf tree")
	}
	if _, err := five.Get(5, Application, 0); !errors.Is(err, ErrLeafOutOfRange) {
		t.Errorf("leaf 5 of 5: %v", err)
	}
}

func TestNewErrors(t *testing.T) {
	s := suite(t, 1)
	for _, c := range []struct {
		name   string
		s      *ciphersuite.Suite
		secret []byte
		leaves uint32
	}{
		{"nil suite", nil, seq(32), 2},
		{"short secret", s, seq(31), 2},
		{"long secret", s, seq(33), 2},
		{"nil secret", s, nil, 2},
		{"no leaves", s, seq(32), 0},
		{"too many leaves", s, seq(32), MaxLeaves + 1},
	} {
		if _, err := New(c.s, c.secret, c.leaves, Config{}); !errors.Is(err, ErrInvalidParameter) {
			t.Errorf("%s: got %v, want ErrInvalidParameter", c.name, err)
		}
	}
	if _, err := New(s, seq(32), MaxLeaves, Config{}); err != nil {
		t.Errorf("MaxLeaves leaves: %v", err)
	}
}

func TestNewCopiesSecret(t *testing.T) {
	s := suite(t, 1)
	secret := seq(32)
	a, err := New(s, secret, 2, Config{})
	if err != nil {
		t.Fatal(err)
	}
	clear(secret)
	b := newTree(t, s, 2, Config{})
	ka, _ := a.Next(0, Application)
	kb, _ := b.Next(0, Application)
	if !bytes.Equal(ka.Key, kb.Key) {
		t.Error("New kept a reference to the caller's secret")
	}
}

func TestArgumentErrors(t *testing.T) {
	tr := newTree(t, suite(t, 1), 4, Config{})
	before := state(t, tr)
	_, err := tr.Next(4, Application)
	var e *Error
	if !errors.Is(err, ErrLeafOutOfRange) || !errors.As(err, &e) || e.Op != "Next" || e.Leaf != 4 {
		t.Errorf("Next leaf 4: %v", err)
	}
	if !strings.Contains(fmt.Sprint(err), "leaf 4") {
		t.Errorf("error does not say which leaf: %v", err)
	}
	if _, err := tr.Get(0, 2, 0); !errors.Is(err, ErrInvalidRatchetType) {
		t.Errorf("ratchet type 2: %v", err)
	}
	if err := tr.Consume(0, 9, 0); !errors.Is(err, ErrInvalidRatchetType) {
		t.Errorf("ratchet type 9: %v", err)
	}
	if err := tr.Consume(7, Handshake, 0); !errors.Is(err, ErrLeafOutOfRange) {
		t.Errorf("Consume leaf 7: %v", err)
	}
	if !bytes.Equal(before, state(t, tr)) {
		t.Error("failed calls changed the tree")
	}
}

func TestGetDoesNotChangeState(t *testing.T) {
	tr := newTree(t, suite(t, 1), 8, Config{})
	before := state(t, tr)
	for _, g := range []uint32{0, 5, 1000} {
		if _, err := tr.Get(3, Application, g); err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(before, state(t, tr)) {
		t.Error("Get on an uninitialised leaf changed the tree")
	}
	if err := tr.Consume(3, Application, 4); err != nil {
		t.Fatal(err)
	}
	before = state(t, tr)
	for _, g := range []uint32{1, 5, 6, 1004} {
		if _, err := tr.Get(3, Application, g); err != nil {
			t.Fatalf("Get %d: %v", g, err)
		}
	}
	if !bytes.Equal(before, state(t, tr)) {
		t.Error("Get on an initialised leaf changed the tree")
	}
	kn, err := tr.Get(3, Application, 2)
	if err != nil {
		t.Fatal(err)
	}
	clear(kn.Key) // the caller's copy, not the tree's
	kn2, err := tr.Get(3, Application, 2)
	if err != nil || bytes.Equal(kn2.Key, kn.Key) {
		t.Errorf("Get returned the tree's own key slice (err %v)", err)
	}
}

func TestInOrderReceive(t *testing.T) {
	s := suite(t, 3)
	send, recv := newTree(t, s, 2, Config{}), newTree(t, s, 2, Config{})
	for g := range uint32(20) {
		want, err := send.Next(1, Handshake)
		if err != nil {
			t.Fatal(err)
		}
		got, err := recv.Get(1, Handshake, g)
		if err != nil {
			t.Fatal(err)
		}
		if want.Generation != g || !bytes.Equal(got.Key, want.Key) || !bytes.Equal(got.Nonce, want.Nonce) {
			t.Fatalf("generation %d: receiver key differs", g)
		}
		if err := recv.Consume(1, Handshake, g); err != nil {
			t.Fatal(err)
		}
		if _, err := recv.Get(1, Handshake, g); !errors.Is(err, ErrGenerationUsed) {
			t.Fatalf("generation %d usable twice: %v", g, err)
		}
	}
	if n := len(recv.leafs[1].r[Handshake].skipped); n != 0 {
		t.Errorf("%d skipped keys kept though every message arrived in order", n)
	}
}

func TestOutOfOrder(t *testing.T) {
	s := suite(t, 1)
	ref := newTree(t, s, 2, Config{}) // answers for comparison
	tr := newTree(t, s, 2, Config{OutOfOrderTolerance: 3, MaxForwardDistance: 10})
	want := func(g uint32) []byte {
		kn, err := ref.Get(0, Application, g)
		if err != nil {
			t.Fatal(err)
		}
		return kn.Key
	}
	if err := tr.Consume(0, Application, 6); err != nil {
		t.Fatal(err)
	}
	// Window of 3 below 6: 3, 4, 5 kept; 0, 1, 2 deleted.
	for g := range uint32(7) {
		kn, err := tr.Get(0, Application, g)
		switch {
		case g >= 3 && g <= 5:
			if err != nil || !bytes.Equal(kn.Key, want(g)) {
				t.Errorf("skipped generation %d: %v", g, err)
			}
		default:
			if !errors.Is(err, ErrGenerationUsed) {
				t.Errorf("generation %d: got %v, want ErrGenerationUsed", g, err)
			}
		}
	}
	if err := tr.Consume(0, Application, 4); err != nil {
		t.Fatal(err)
	}
	if err := tr.Consume(0, Application, 4); !errors.Is(err, ErrGenerationUsed) {
		t.Errorf("second Consume of 4: %v", err)
	}
	// Consuming 7 moves the window to 4..6: 3 is deleted, 5 stays.
	if err := tr.Consume(0, Application, 7); err != nil {
		t.Fatal(err)
	}
	if _, err := tr.Get(0, Application, 3); !errors.Is(err, ErrGenerationUsed) {
		t.Errorf("generation 3 after the window moved: %v", err)
	}
	if kn, err := tr.Get(0, Application, 5); err != nil || !bytes.Equal(kn.Key, want(5)) {
		t.Errorf("generation 5 after the window moved: %v", err)
	}
	if got := sortedKeys(tr.leafs[0].r[Application].skipped); fmt.Sprint(got) != "[5]" {
		t.Errorf("skipped keys held: %v, want [5]", got)
	}
	// The handshake ratchet is independent.
	if kn, err := tr.Get(0, Handshake, 0); err != nil || kn.Generation != 0 {
		t.Errorf("handshake ratchet: %v", err)
	}
}

func TestForwardDistance(t *testing.T) {
	s := suite(t, 1)
	tr := newTree(t, s, 2, Config{MaxForwardDistance: 10})
	before := state(t, tr)
	if _, err := tr.Get(1, Application, 11); !errors.Is(err, ErrTooFarAhead) {
		t.Errorf("Get 11 on a fresh ratchet: %v", err)
	}
	err := tr.Consume(1, Application, 11)
	var e *Error
	if !errors.Is(err, ErrTooFarAhead) || !errors.As(err, &e) || !e.HasGen || e.Generation != 11 {
		t.Errorf("Consume 11 on a fresh ratchet: %v", err)
	}
	if !bytes.Equal(before, state(t, tr)) {
		t.Error("a rejected Consume initialised the leaf")
	}
	if _, err := tr.Get(1, Application, 10); err != nil {
		t.Errorf("Get 10: %v", err)
	}
	if err := tr.Consume(1, Application, 10); err != nil {
		t.Fatal(err)
	}
	before = state(t, tr)
	if err := tr.Consume(1, Application, 22); !errors.Is(err, ErrTooFarAhead) {
		t.Errorf("Consume 22 after 10: %v", err)
	}
	if !bytes.Equal(before, state(t, tr)) {
		t.Error("a rejected Consume changed the tree")
	}
	if err := tr.Consume(1, Application, 21); err != nil {
		t.Errorf("Consume 21 after 10: %v", err)
	}
	// Default distance is 1000.
	d := newTree(t, s, 2, Config{})
	if _, err := d.Get(0, Handshake, 1000); err != nil {
		t.Errorf("default distance, 1000: %v", err)
	}
	if _, err := d.Get(0, Handshake, 1001); !errors.Is(err, ErrTooFarAhead) {
		t.Errorf("default distance, 1001: %v", err)
	}
}

func TestSenderDeletesUsedKeys(t *testing.T) {
	tr := newTree(t, suite(t, 1), 2, Config{})
	if _, err := tr.Next(0, Application); err != nil {
		t.Fatal(err)
	}
	if _, err := tr.Get(0, Application, 0); !errors.Is(err, ErrGenerationUsed) {
		t.Errorf("sent generation still available: %v", err)
	}
}

func TestExhaustion(t *testing.T) {
	s := suite(t, 1)
	tr := newTree(t, s, 2, Config{})
	if err := tr.Consume(0, Application, 0); err != nil {
		t.Fatal(err)
	}
	r := &tr.leafs[0].r[Application]
	// Jump the ratchet to its last generation (a secret that is not the
	// real one, which would take 2^32 steps to reach).
	r.next = 1<<32 - 1
	last, err := tr.Next(0, Application)
	if err != nil || last.Generation != 1<<32-1 {
		t.Fatalf("last generation: %v %d", err, last.Generation)
	}
	if r.secret != nil {
		t.Error("exhausted ratchet still holds a secret")
	}
	if _, err := tr.Next(0, Application); !errors.Is(err, ErrExhausted) {
		t.Errorf("Next after the last generation: %v", err)
	}
	if _, err := tr.Get(0, Application, 1<<32-1); !errors.Is(err, ErrGenerationUsed) {
		t.Errorf("Get of the last generation: %v", err)
	}
	b := state(t, tr)
	var back Tree
	if err := back.UnmarshalBinary(b); err != nil {
		t.Fatalf("exhausted ratchet does not round-trip: %v", err)
	}
	if !bytes.Equal(state(t, &back), b) {
		t.Error("exhausted ratchet round trip differs")
	}
}

func TestErase(t *testing.T) {
	tr := newTree(t, suite(t, 1), 4, Config{})
	if _, err := tr.Next(1, Application); err != nil {
		t.Fatal(err)
	}
	tr.Erase()
	if _, err := tr.Next(1, Application); !errors.Is(err, ErrUnavailable) {
		t.Errorf("after Erase: %v", err)
	}
	if _, err := tr.Get(2, Application, 0); !errors.Is(err, ErrUnavailable) {
		t.Errorf("after Erase: %v", err)
	}
	if err := tr.Consume(2, Application, 0); !errors.Is(err, ErrUnavailable) {
		t.Errorf("after Erase: %v", err)
	}
}

func TestRedaction(t *testing.T) {
	s := suite(t, 1)
	tr := newTree(t, s, 2, Config{})
	kn, err := tr.Next(0, Application)
	if err != nil {
		t.Fatal(err)
	}
	secrets := [][]byte{kn.Key, kn.Nonce, seq(32), tr.nodes[2]}
	for _, f := range []string{"%v", "%+v", "%#v", "%s", "%x", "%X", "%q", "%d"} {
		for _, v := range []any{kn, &kn, tr, []KeyNonce{kn}, struct{ K KeyNonce }{kn}} {
			out := fmt.Sprintf(f, v)
			for _, sec := range secrets {
				for _, enc := range []string{hex.EncodeToString(sec), strings.ToUpper(hex.EncodeToString(sec)), fmt.Sprint(sec[:4])[1:8], string(sec)} {
					if strings.Contains(out, enc) {
						t.Errorf("%s of %T prints a secret: %s", f, v, out)
					}
				}
			}
		}
	}
	if !strings.Contains(fmt.Sprint(kn), "REDACTED") {
		t.Errorf("KeyNonce prints %q", fmt.Sprint(kn))
	}
}

func TestConcurrent(t *testing.T) {
	tr := newTree(t, suite(t, 1), 16, Config{})
	var wg sync.WaitGroup
	seen := make([]map[string]bool, 16)
	for l := range 16 {
		seen[l] = map[string]bool{}
		wg.Go(func() {
			for range 50 {
				kn, err := tr.Next(treemath.LeafIndex(l), Application)
				if err != nil {
					t.Error(err)
					return
				}
				seen[l][string(kn.Key)] = true
			}
		})
	}
	wg.Wait()
	total := map[string]bool{}
	for _, m := range seen {
		for k := range m {
			total[k] = true
		}
	}
	if len(total) != 16*50 {
		t.Errorf("%d distinct keys, want %d", len(total), 16*50)
	}
}

func TestSenderDataShortCiphertext(t *testing.T) {
	s := suite(t, 1)
	secret := seq(32)
	short := seq(10)
	k1, n1 := SenderDataKeyNonce(s, secret, short)
	if !bytes.Equal(k1, s.ExpandWithLabel(secret, "key", short, 16)) || !bytes.Equal(n1, s.ExpandWithLabel(secret, "nonce", short, 12)) {
		t.Error("short ciphertext must be used whole")
	}
	long := seq(100)
	k2, _ := SenderDataKeyNonce(s, secret, long)
	k3, _ := SenderDataKeyNonce(s, secret, long[:32])
	if !bytes.Equal(k2, k3) {
		t.Error("only the first Nh bytes may count")
	}
	if len(k1) != 16 || len(n1) != 12 {
		t.Errorf("lengths %d %d", len(k1), len(n1))
	}
}

func TestRatchetTypeString(t *testing.T) {
	if Handshake.String() != "handshake" || Application.String() != "application" || RatchetType(5).String() != "RatchetType(5)" {
		t.Error("RatchetType.String")
	}
}
