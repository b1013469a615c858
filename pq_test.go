package mls_test

import (
	"bytes"
	"context"
	"fmt"
	"testing"

	"github.com/mlskit/mls"
	"github.com/mlskit/mls/ciphersuite"
	"github.com/mlskit/mls/credential"
	"github.com/mlskit/mls/storage"
	"github.com/mlskit/mls/storage/memory"
)

// pqMember is one participant of the post-quantum lifecycle test, built on
// the Client API alone: its store outlives its Client so that a reload is a
// new Client on the same store.
type pqMember struct {
	name   string
	store  storage.Store
	client *mls.Client
	group  *mls.Group
}

func newPQMember(t testing.TB, name string, suite mls.CipherSuite) *pqMember {
	t.Helper()
	s, err := ciphersuite.Lookup(suite)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := s.GenerateSignatureKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	m := &pqMember{name: name, store: memory.New()}
	m.client, err = mls.NewClient(context.Background(), m.store, credential.NewBasic([]byte(name)), signer, credential.AcceptAll, mls.ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// process processes a handshake message as it comes off the wire and
// merges the commit it carries.
func (m *pqMember) process(t testing.TB, msg *mls.Message) {
	t.Helper()
	ctx := context.Background()
	p, err := m.group.Process(ctx, roundTrip(t, msg))
	if err != nil {
		t.Fatalf("%s: Process: %v", m.name, err)
	}
	if p.Kind != mls.KindCommit {
		t.Fatalf("%s: got %v, want a commit", m.name, p.Kind)
	}
	if err := m.group.MergeStagedCommit(ctx, p.Commit); err != nil {
		t.Fatalf("%s: merge: %v", m.name, err)
	}
}

// receive checks that every member gets plaintext from sender.
func pqReceive(t testing.TB, sender *pqMember, plaintext string, to ...*pqMember) {
	t.Helper()
	ctx := context.Background()
	msg, err := sender.group.Seal(ctx, []byte(plaintext), []byte("aad "+sender.name))
	if err != nil {
		t.Fatalf("%s: Seal: %v", sender.name, err)
	}
	for _, m := range to {
		p, err := m.group.Process(ctx, roundTrip(t, msg))
		if err != nil {
			t.Fatalf("%s: Process application message: %v", m.name, err)
		}
		if p.Kind != mls.KindApplication || string(p.ApplicationData) != plaintext ||
			string(p.AuthenticatedData) != "aad "+sender.name || string(p.Credential.Identity()) != sender.name {
			t.Fatalf("%s: got %v %q (aad %q) from %q, want %q from %s", m.name, p.Kind, p.ApplicationData, p.AuthenticatedData, p.Credential.Identity(), plaintext, sender.name)
		}
	}
}

// pqAgree checks that the members are in the same epoch with the same
// epoch authenticator and exported secret (RFC 9420, Sections 8.5, 8.7).
func pqAgree(t testing.TB, ms ...*pqMember) {
	t.Helper()
	a := ms[0].group.EpochAuthenticator()
	e, err := ms[0].group.ExportSecret("pq test", nil, 32)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range ms[1:] {
		if m.group.Epoch() != ms[0].group.Epoch() {
			t.Fatalf("%s at epoch %d, %s at %d", ms[0].name, ms[0].group.Epoch(), m.name, m.group.Epoch())
		}
		f, err := m.group.ExportSecret("pq test", nil, 32)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(m.group.EpochAuthenticator(), a) || !bytes.Equal(f, e) {
			t.Fatalf("%s and %s disagree on the epoch's secrets", ms[0].name, m.name)
		}
	}
	if n := len(ms[0].group.Members()); n != len(ms) {
		t.Fatalf("%d members, want %d", n, len(ms))
	}
}

// pqKeySizes are the HPKE public key and signature public key sizes of
// each PQ suite: ML-KEM-768 1,184 and ML-KEM-1024 1,568 bytes (FIPS 203,
// Table 3), X-Wing 1,216 (ML-KEM-768 then X25519), MLKEM768-P256 1,249 and
// MLKEM1024-P384 1,665 (ML-KEM then the uncompressed point); Ed25519 32,
// P-256 65, P-384 97, ML-DSA-44/65/87 1,312/1,952/2,592 (FIPS 204, Table 2).
var pqKeySizes = map[mls.CipherSuite][2]int{
	ciphersuite.MLS_128_MLKEM768X25519_AES128GCM_SHA256_Ed25519:        {1216, 32},
	ciphersuite.MLS_128_MLKEM768X25519_AES256GCM_SHA384_Ed25519:        {1216, 32},
	ciphersuite.MLS_128_MLKEM768P256_AES128GCM_SHA256_P256:             {1249, 65},
	ciphersuite.MLS_128_MLKEM768P256_AES256GCM_SHA384_P256:             {1249, 65},
	ciphersuite.MLS_192_MLKEM1024P384_AES256GCM_SHA384_P384:            {1665, 97},
	ciphersuite.MLS_128_MLKEM768_AES256GCM_SHA384_Ed25519:              {1184, 32},
	ciphersuite.MLS_128_MLKEM768_AES256GCM_SHA384_P256:                 {1184, 65},
	ciphersuite.MLS_192_MLKEM1024_AES256GCM_SHA384_P384:                {1568, 97},
	ciphersuite.MLS_128_MLKEM768X25519_CHACHA20POLY1305_SHA384_MLDSA44: {1216, 1312},
	ciphersuite.MLS_192_MLKEM768_AES256GCM_SHA384_MLDSA65:              {1184, 1952},
	ciphersuite.MLS_256_MLKEM1024_AES256GCM_SHA384_MLDSA87:             {1568, 2592},
}

// TestPQSuitesLifecycle runs the whole life of a group in every suite of
// draft-ietf-mls-pq-ciphersuites-06: create, add by Welcome, application
// messages, update, external and resumption PSKs, external join, remove,
// and a reload of a member from its store.
func TestPQSuitesLifecycle(t *testing.T) {
	for _, suite := range ciphersuite.PostQuantum() {
		t.Run(suite.String(), func(t *testing.T) {
			t.Parallel()
			testPQLifecycle(t, suite)
		})
	}
}

func testPQLifecycle(t *testing.T, suite mls.CipherSuite) {
	ctx := context.Background()
	s, _ := ciphersuite.Lookup(suite)
	alice, bob, charlie, dave := newPQMember(t, "alice", suite), newPQMember(t, "bob", suite), newPQMember(t, "charlie", suite), newPQMember(t, "dave", suite)

	var err error
	alice.group, err = alice.client.CreateGroup(ctx, suite, mls.GroupConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if alice.group.CipherSuite() != suite {
		t.Fatalf("group suite %v, want %v", alice.group.CipherSuite(), suite)
	}

	// Add by Welcome (RFC 9420, Section 12.4.3.1). The key packages cross
	// the wire, so their PQ init keys and signature keys go through the
	// codec.
	var kps []*mls.KeyPackage
	for _, m := range []*pqMember{bob, charlie} {
		kp, err := m.client.NewKeyPackage(ctx, suite, mls.KeyPackageOptions{})
		if err != nil {
			t.Fatal(err)
		}
		raw, err := kp.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		back, err := mls.ParseKeyPackage(raw)
		if err != nil {
			t.Fatalf("%s's key package (%d bytes) does not parse: %v", m.name, len(raw), err)
		}
		if back.CipherSuite() != suite {
			t.Fatalf("key package suite %v, want %v", back.CipherSuite(), suite)
		}
		sigKey, err := m.client.SignatureKey(suite)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(back.LeafNode().SignatureKey(), sigKey) {
			t.Fatalf("%s's key package carries another signature key", m.name)
		}
		// The PQ keys crossed the codec whole (FIPS 203 and 204 sizes).
		want := pqKeySizes[suite]
		if len(back.InitKey()) != want[0] || len(back.EncryptionKey()) != want[0] || len(sigKey) != want[1] {
			t.Fatalf("init/encryption/signature keys of %d/%d/%d bytes, want %d/%d/%d",
				len(back.InitKey()), len(back.EncryptionKey()), len(sigKey), want[0], want[0], want[1])
		}
		kps = append(kps, back)
	}
	res, err := alice.group.AddMembers(ctx, kps...)
	if err != nil {
		t.Fatal(err)
	}
	if err := alice.group.MergePendingCommit(ctx); err != nil {
		t.Fatal(err)
	}
	tree, err := alice.group.ExportRatchetTree()
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []*pqMember{bob, charlie} {
		sw, err := m.client.StageWelcome(ctx, roundTrip(t, res.Welcome), mls.WelcomeOptions{RatchetTree: tree})
		if err != nil {
			t.Fatalf("%s: StageWelcome: %v", m.name, err)
		}
		if m.group, err = sw.Join(ctx); err != nil {
			t.Fatalf("%s: Join: %v", m.name, err)
		}
	}
	pqAgree(t, alice, bob, charlie)
	pqReceive(t, alice, "hello", bob, charlie)
	pqReceive(t, charlie, "hi", alice, bob)

	// A self-update commit with an UpdatePath (Section 12.4.2): the path
	// secrets are sealed with the suite's PQ KEM.
	res, err = bob.group.SelfUpdate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := bob.group.MergePendingCommit(ctx); err != nil {
		t.Fatal(err)
	}
	alice.process(t, res.Commit)
	charlie.process(t, res.Commit)
	pqAgree(t, alice, bob, charlie)

	// An external PSK and a resumption PSK (Section 8.4).
	pskID, psk := []byte("pq psk"), bytes.Repeat([]byte{0x5a}, s.HashSize())
	for _, m := range []*pqMember{alice, bob, charlie} {
		if err := m.client.StorePSK(ctx, pskID, psk); err != nil {
			t.Fatal(err)
		}
	}
	before := charlie.group.EpochAuthenticator()
	res, err = charlie.group.Commit(ctx, mls.CommitOptions{ExternalPSKs: [][]byte{pskID}, ResumptionPSKs: []uint64{charlie.group.Epoch() - 1}})
	if err != nil {
		t.Fatal(err)
	}
	if err := charlie.group.MergePendingCommit(ctx); err != nil {
		t.Fatal(err)
	}
	alice.process(t, res.Commit)
	bob.process(t, res.Commit)
	pqAgree(t, alice, bob, charlie)
	if bytes.Equal(before, charlie.group.EpochAuthenticator()) {
		t.Fatal("the PSK commit did not change the epoch")
	}
	pqReceive(t, bob, "after psk", alice, charlie)

	// An external join from a GroupInfo (Section 12.4.3.2): the joiner
	// encapsulates to the external_pub, a KEM public key of the suite.
	gi, err := alice.group.ExportGroupInfo(true)
	if err != nil {
		t.Fatal(err)
	}
	dave.group, res, err = dave.client.JoinExternal(ctx, roundTrip(t, gi), mls.ExternalJoinOptions{})
	if err != nil {
		t.Fatalf("dave: JoinExternal: %v", err)
	}
	for _, m := range []*pqMember{alice, bob, charlie} {
		m.process(t, res.Commit)
	}
	pqAgree(t, alice, bob, charlie, dave)
	pqReceive(t, dave, "joined", alice, bob, charlie)

	// Remove (Section 12.1.3).
	res, err = alice.group.RemoveMembers(ctx, charlie.group.OwnLeafIndex())
	if err != nil {
		t.Fatal(err)
	}
	if err := alice.group.MergePendingCommit(ctx); err != nil {
		t.Fatal(err)
	}
	for _, m := range []*pqMember{bob, charlie, dave} {
		m.process(t, res.Commit)
	}
	if charlie.group.IsActive() {
		t.Fatal("charlie is still active after his removal")
	}
	pqAgree(t, alice, bob, dave)

	// Persistence: bob's device restarts with a new Client on the same
	// store and the same key, loads the group and carries on.
	signer := bob.client.Signer()
	bob.client, err = mls.NewClient(ctx, bob.store, credential.NewBasic([]byte("bob")), signer, credential.AcceptAll, mls.ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	groupID := bob.group.GroupID()
	if bob.group, err = bob.client.LoadGroup(ctx, groupID); err != nil {
		t.Fatalf("bob: LoadGroup: %v", err)
	}
	pqAgree(t, alice, bob, dave)
	pqReceive(t, bob, "reloaded", alice, dave)
	res, err = bob.group.SelfUpdate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := bob.group.MergePendingCommit(ctx); err != nil {
		t.Fatal(err)
	}
	alice.process(t, res.Commit)
	dave.process(t, res.Commit)
	pqAgree(t, alice, bob, dave)
}

// TestPQGeneratedSignerReload: a client that generates its own PQ
// signature key (ClientOptions.SignatureSuite, an ML-DSA suite) keeps it in
// its store through MarshalSigner and gets the same key back on the next
// NewClient.
func TestPQGeneratedSignerReload(t *testing.T) {
	ctx := context.Background()
	for _, suite := range []mls.CipherSuite{
		ciphersuite.MLS_128_MLKEM768X25519_CHACHA20POLY1305_SHA384_MLDSA44,
		ciphersuite.MLS_192_MLKEM768_AES256GCM_SHA384_MLDSA65,
		ciphersuite.MLS_256_MLKEM1024_AES256GCM_SHA384_MLDSA87,
	} {
		t.Run(suite.String(), func(t *testing.T) {
			store := memory.New()
			opts := mls.ClientOptions{SignatureSuite: suite}
			c1, err := mls.NewClient(ctx, store, credential.NewBasic([]byte("x")), nil, credential.AcceptAll, opts)
			if err != nil {
				t.Fatal(err)
			}
			k1, err := c1.SignatureKey(suite)
			if err != nil {
				t.Fatal(err)
			}
			c2, err := mls.NewClient(ctx, store, credential.NewBasic([]byte("x")), nil, credential.AcceptAll, opts)
			if err != nil {
				t.Fatal(err)
			}
			k2, err := c2.SignatureKey(suite)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(k1, k2) {
				t.Fatal("the stored ML-DSA key came back as another key")
			}
			if _, err := c2.CreateGroup(ctx, suite, mls.GroupConfig{}); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// BenchmarkPQSuites measures, for each post-quantum suite, a group of
// N = 1,000 members made by one commit that adds 999 key packages to a
// fresh group (the "add" sub-benchmark: the commit and its Welcome), and a
// new member's check of the Welcome and tree (the "join" sub-benchmark), and
// a self-update commit in that group (the "update" sub-benchmark, whose
// UpdatePath encrypts to the resolution of a tree of blanks). It reports the
// sizes of one key package, the commit, the Welcome and the ratchet tree.
// MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519 runs first, as the baseline.
func BenchmarkPQSuites(b *testing.B) {
	const n = 1000
	ctx := context.Background()
	baseline := []mls.CipherSuite{mls.MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519}
	for _, suite := range append(baseline, ciphersuite.PostQuantum()...) {
		b.Run(suite.String(), func(b *testing.B) {
			kps := make([]*mls.KeyPackage, n-1)
			var first *pqMember
			for i := range kps {
				m := newPQMember(b, fmt.Sprintf("member %d", i), suite)
				kp, err := m.client.NewKeyPackage(ctx, suite, mls.KeyPackageOptions{})
				if err != nil {
					b.Fatal(err)
				}
				kps[i] = kp
				if i == 0 {
					first = m
				}
			}
			kpRaw, err := kps[0].MarshalBinary()
			if err != nil {
				b.Fatal(err)
			}
			creator := newPQMember(b, "creator", suite)
			newGroup := func() *mls.Group {
				g, err := creator.client.CreateGroup(ctx, suite, mls.GroupConfig{})
				if err != nil {
					b.Fatal(err)
				}
				return g
			}
			var last *mls.Group
			var welcome *mls.Message
			b.Run("add", func(b *testing.B) {
				var res *mls.CommitResult
				for b.Loop() {
					b.StopTimer()
					g := newGroup()
					b.StartTimer()
					if res, err = g.AddMembers(ctx, kps...); err != nil {
						b.Fatal(err)
					}
					if err := g.MergePendingCommit(ctx); err != nil {
						b.Fatal(err)
					}
					last = g
				}
				welcome = res.Welcome
				commitRaw, _ := res.Commit.MarshalBinary()
				welcomeRaw, _ := res.Welcome.MarshalBinary()
				tree, _ := last.ExportRatchetTree()
				b.ReportMetric(float64(len(kpRaw)), "kp-bytes")
				b.ReportMetric(float64(len(commitRaw)), "commit-bytes")
				b.ReportMetric(float64(len(welcomeRaw)), "welcome-bytes")
				b.ReportMetric(float64(len(tree)), "tree-bytes")
			})
			if last == nil {
				return
			}
			// A new member checks the Welcome and the 1,000-leaf tree
			// (RFC 9420, Section 12.4.3.1: every leaf signature, the
			// parent and tree hashes, the key schedule); StageWelcome
			// stores nothing, so it can repeat.
			b.Run("join", func(b *testing.B) {
				tree, err := last.ExportRatchetTree()
				if err != nil {
					b.Fatal(err)
				}
				for b.Loop() {
					if _, err := first.client.StageWelcome(ctx, welcome, mls.WelcomeOptions{RatchetTree: tree}); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run("update", func(b *testing.B) {
				var res *mls.CommitResult
				for b.Loop() {
					if res, err = last.SelfUpdate(ctx); err != nil {
						b.Fatal(err)
					}
					if err := last.MergePendingCommit(ctx); err != nil {
						b.Fatal(err)
					}
				}
				commit, _ := res.Commit.MarshalBinary()
				b.ReportMetric(float64(len(commit)), "commit-bytes")
			})
		})
	}
}
