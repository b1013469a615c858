package message

import (
	"bytes"
	"crypto"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"testing"

	"github.com/mlskit/mls/ciphersuite"
	"github.com/mlskit/mls/internal/vectors"
)

// testSigner returns a deterministic signing key for suite id.
func testSigner(t testing.TB, id ciphersuite.ID, seed byte) (*ciphersuite.Suite, crypto.Signer, []byte) {
	t.Helper()
	s, err := ciphersuite.Lookup(id)
	if err != nil {
		t.Fatal(err)
	}
	var k [32]byte
	k[0] = seed
	signer, err := s.GenerateSignatureKey(rand.NewChaCha8(k))
	if err != nil {
		t.Fatal(err)
	}
	pub, err := s.SignaturePublicKey(signer)
	if err != nil {
		t.Fatal(err)
	}
	return s, signer, pub
}

// TestLeafNodeTBS compares LeafNodeTBS with bytes written by hand from RFC
// 9420, Section 7.2: group_id and leaf_index follow only for the sources
// update and commit.
func TestLeafNodeTBS(t *testing.T) {
	base := func(src LeafNodeSource) *LeafNode {
		return &LeafNode{EncryptionKey: []byte{1}, SignatureKey: []byte{2}, Credential: Credential{Type: CredentialBasic, Identity: []byte{}},
			Source: src, Signature: []byte{0xff}}
	}
	kp := base(LeafNodeSourceKeyPackage)
	kp.Lifetime = Lifetime{NotBefore: 1, NotAfter: 2}
	cm := base(LeafNodeSourceCommit)
	cm.ParentHash = []byte{0xab}
	const prefix = "0101 0102 0001 00 00 00 00 00 00"
	tests := []struct {
		name string
		ln   *LeafNode
		want string
	}{
		{"key_package", kp, prefix + "01 0000000000000001 0000000000000002 00"},
		{"update", base(LeafNodeSourceUpdate), prefix + "02 00 0167 00000007"},
		{"commit", cm, prefix + "03 01ab 00 0167 00000007"},
	}
	for _, tt := range tests {
		if got := tt.ln.TBS([]byte("g"), 7); !bytes.Equal(got, unhex(t, tt.want)) {
			t.Errorf("%s: got %x, want %s", tt.name, got, tt.want)
		}
	}
	if got := (&LeafNode{Source: 9}).TBS(nil, 0); got != nil {
		t.Errorf("unknown source: TBS = %x, want nil", got)
	}
}

func TestLeafNodeSignVerify(t *testing.T) {
	for _, id := range []ciphersuite.ID{1, 2, 4} {
		s, signer, pub := testSigner(t, id, byte(id))
		for _, src := range []LeafNodeSource{LeafNodeSourceKeyPackage, LeafNodeSourceUpdate, LeafNodeSourceCommit} {
			t.Run(fmt.Sprintf("suite=%d/source=%d", id, src), func(t *testing.T) {
				ln := sampleLeafNode(src)
				ln.SignatureKey = pub
				ln.Signature = nil
				if err := ln.Sign(s, signer, []byte("group"), 3); err != nil {
					t.Fatal(err)
				}
				if err := ln.VerifySignature(s, []byte("group"), 3); err != nil {
					t.Fatalf("own signature: %v", err)
				}
				// Signed again after a round trip through the wire.
				var back LeafNode
				if err := Unmarshal(MustMarshal(&ln), &back); err != nil {
					t.Fatal(err)
				}
				if err := back.VerifySignature(s, []byte("group"), 3); err != nil {
					t.Fatalf("after round trip: %v", err)
				}
				otherGroup := ln.VerifySignature(s, []byte("other"), 3)
				otherLeaf := ln.VerifySignature(s, []byte("group"), 4)
				if src == LeafNodeSourceKeyPackage {
					if otherGroup != nil || otherLeaf != nil {
						t.Fatalf("key_package leaf depends on group context: %v, %v", otherGroup, otherLeaf)
					}
				} else {
					if !errors.Is(otherGroup, ciphersuite.ErrInvalidSignature) {
						t.Fatalf("other group_id: got %v", otherGroup)
					}
					if !errors.Is(otherLeaf, ciphersuite.ErrInvalidSignature) {
						t.Fatalf("other leaf_index: got %v", otherLeaf)
					}
				}
				ln.Capabilities.Versions = append(ln.Capabilities.Versions, 2)
				if err := ln.VerifySignature(s, []byte("group"), 3); !errors.Is(err, ciphersuite.ErrInvalidSignature) {
					t.Fatalf("modified node: got %v", err)
				}
			})
		}
	}
}

func TestKeyPackageSignVerify(t *testing.T) {
	s, signer, pub := testSigner(t, 1, 9)
	kp := sampleKeyPackage()
	kp.LeafNode.SignatureKey = pub
	if err := kp.LeafNode.Sign(s, signer, nil, 0); err != nil {
		t.Fatal(err)
	}
	if err := kp.Sign(s, signer); err != nil {
		t.Fatal(err)
	}
	if err := kp.VerifySignature(s); err != nil {
		t.Fatal(err)
	}
	// A KeyPackage signature is not a LeafNode signature: the labels differ.
	tbs, err := kp.TBS()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.VerifyWithLabel(pub, "LeafNodeTBS", tbs, kp.Signature); err == nil {
		t.Fatal("KeyPackage signature verifies under the LeafNodeTBS label")
	}
	kp.InitKey[0] ^= 1
	if err := kp.VerifySignature(s); !errors.Is(err, ciphersuite.ErrInvalidSignature) {
		t.Fatalf("modified init_key: got %v", err)
	}
}

func TestGroupInfoSignVerify(t *testing.T) {
	s, signer, pub := testSigner(t, 3, 1)
	gi := sampleGroupInfo()
	if err := gi.Sign(s, signer); err != nil {
		t.Fatal(err)
	}
	if err := gi.VerifySignature(s, pub); err != nil {
		t.Fatal(err)
	}
	gi.Signer++
	if err := gi.VerifySignature(s, pub); !errors.Is(err, ciphersuite.ErrInvalidSignature) {
		t.Fatalf("modified signer: got %v", err)
	}
	gi.Signer--
	_, _, otherPub := testSigner(t, 3, 2)
	if err := gi.VerifySignature(s, otherPub); !errors.Is(err, ciphersuite.ErrInvalidSignature) {
		t.Fatalf("other key: got %v", err)
	}
}

func readVectors(t *testing.T, name string, v any) {
	t.Helper()
	dir, err := vectors.Dir()
	if err != nil {
		t.Fatal(err)
	}
	raw, err := vectors.Read(dir, name)
	if errors.Is(err, vectors.ErrNotFound) && os.Getenv("CI") != "true" {
		t.Skipf("%v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, v); err != nil {
		t.Fatal(err)
	}
}

// TestLeafSignaturesFromTreeVectors verifies every leaf signature of the
// official tree-validation trees, which were signed by other
// implementations over LeafNodeTBS with the vector's group_id.
func TestLeafSignaturesFromTreeVectors(t *testing.T) {
	var vs []struct {
		CipherSuite uint16      `json:"cipher_suite"`
		Tree        vectors.Hex `json:"tree"`
		GroupID     vectors.Hex `json:"group_id"`
	}
	readVectors(t, "tree-validation.json", &vs)
	leaves := 0
	for i, v := range vs {
		s, err := ciphersuite.Lookup(ciphersuite.ID(v.CipherSuite))
		if err != nil {
			t.Fatal(err)
		}
		tree, err := UnmarshalRatchetTree(v.Tree)
		if err != nil {
			t.Fatalf("vector %d: %v", i, err)
		}
		for j, n := range tree {
			if n == nil || n.Leaf == nil {
				continue
			}
			if j%2 != 0 {
				t.Fatalf("vector %d: leaf at odd node index %d", i, j)
			}
			if err := n.Leaf.VerifySignature(s, v.GroupID, uint32(j/2)); err != nil {
				t.Errorf("vector %d leaf %d: %v", i, j/2, err)
			}
			leaves++
		}
	}
	if leaves == 0 {
		t.Fatal("no leaves checked")
	}
}

// TestKeyPackageFromWelcomeVectors verifies the official key packages'
// signatures and checks Ref against the reference the Welcome addresses.
func TestKeyPackageFromWelcomeVectors(t *testing.T) {
	var vs []struct {
		CipherSuite uint16      `json:"cipher_suite"`
		KeyPackage  vectors.Hex `json:"key_package"`
		Welcome     vectors.Hex `json:"welcome"`
	}
	readVectors(t, "welcome.json", &vs)
	if len(vs) == 0 {
		t.Fatal("no vectors")
	}
	for i, v := range vs {
		s, err := ciphersuite.Lookup(ciphersuite.ID(v.CipherSuite))
		if err != nil {
			t.Fatal(err)
		}
		kpm, err := UnmarshalMLSMessage(v.KeyPackage)
		if err != nil || kpm.KeyPackage == nil {
			t.Fatalf("vector %d: key package: %v", i, err)
		}
		wm, err := UnmarshalMLSMessage(v.Welcome)
		if err != nil || wm.Welcome == nil {
			t.Fatalf("vector %d: welcome: %v", i, err)
		}
		kp := kpm.KeyPackage
		if err := kp.VerifySignature(s); err != nil {
			t.Errorf("vector %d: %v", i, err)
		}
		if err := kp.LeafNode.VerifySignature(s, nil, 0); err != nil {
			t.Errorf("vector %d: leaf: %v", i, err)
		}
		ref, err := kp.Ref(s)
		if err != nil {
			t.Fatal(err)
		}
		if wm.Welcome.Find(ref) == nil {
			t.Errorf("vector %d: no Welcome entry for KeyPackageRef %x", i, ref)
		}
	}
}

// TestGroupInfoSignMessage: SignMessage, which frames GroupInfoTBS for
// signing in place, signs what Sign signs and returns the encoding of the
// MLSMessage, for extensions whose lengths take 1, 2 and 4 octets.
func TestGroupInfoSignMessage(t *testing.T) {
	for _, id := range []ciphersuite.ID{1, 2} {
		s, signer, pub := testSigner(t, id, 7)
		for _, n := range []int{0, 100, 20000} {
			gi := sampleGroupInfo()
			gi.Signature = nil
			gi.Extensions = append(gi.Extensions, Extension{Type: ExtensionRatchetTree, Data: b(n, 0x44)})
			raw, err := gi.SignMessage(s, signer)
			if err != nil {
				t.Fatal(err)
			}
			if err := gi.VerifySignature(s, pub); err != nil {
				t.Errorf("%v, %d bytes: %v", id, n, err)
			}
			want, err := Marshal(&MLSMessage{Version: MLS10, WireFormat: WireFormatGroupInfo, GroupInfo: gi})
			if err != nil || !bytes.Equal(raw, want) {
				t.Errorf("%v, %d bytes: SignMessage is not the MLSMessage's encoding (%v)", id, n, err)
			}
		}
	}
}
