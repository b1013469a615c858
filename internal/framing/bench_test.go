package framing

import (
	"fmt"
	"testing"

	"github.com/mlskit/mls/ciphersuite"
	"github.com/mlskit/mls/internal/message"
)

// benchContent is an application message of 1024 bytes from leaf 1.
func benchContent(e *env) *message.FramedContent {
	fc := e.content(message.ContentApplication)
	fc.AuthenticatedData = nil
	fc.ApplicationData = make([]byte, 1024)
	return fc
}

// BenchmarkPrivateMessageSeal1KB measures what sending a 1 KB application
// message costs: sign the FramedContentTBS, encrypt content and sender
// data, encode the PrivateMessage.
func BenchmarkPrivateMessageSeal1KB(b *testing.B) {
	for _, id := range ciphersuite.All() {
		b.Run(id.String(), func(b *testing.B) {
			e := newEnv(b, id)
			fc := benchContent(e)
			b.SetBytes(int64(len(fc.ApplicationData)))
			b.ReportAllocs()
			for b.Loop() {
				ac, err := SignContent(e.s, e.signer, message.WireFormatPrivateMessage, fc, e.groupContext)
				if err != nil {
					b.Fatal(err)
				}
				pm, err := ProtectPrivate(e.s, ac, e.send, e.senderDataSecret, 0, e.rnd)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := message.Marshal(pm); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkPrivateMessageOpen1KB measures what receiving a 1 KB
// application message costs: decode the PrivateMessage, decrypt sender
// data and content, verify the signature, consume the key. Messages are
// made in batches outside the timer, in generation order.
func BenchmarkPrivateMessageOpen1KB(b *testing.B) {
	const batch = 256
	for _, id := range ciphersuite.All() {
		b.Run(id.String(), func(b *testing.B) {
			e := newEnv(b, id)
			fc := benchContent(e)
			ac, err := SignContent(e.s, e.signer, message.WireFormatPrivateMessage, fc, e.groupContext)
			if err != nil {
				b.Fatal(err)
			}
			var msgs [][]byte
			next := func() {
				b.StopTimer()
				msgs = msgs[:0]
				for range batch {
					pm, err := ProtectPrivate(e.s, ac, e.send, e.senderDataSecret, 0, e.rnd)
					if err != nil {
						b.Fatal(err)
					}
					msgs = append(msgs, message.MustMarshal(pm))
				}
				b.StartTimer()
			}
			b.SetBytes(int64(len(fc.ApplicationData)))
			b.ReportAllocs()
			i := batch
			for b.Loop() {
				if i == batch {
					next()
					i = 0
				}
				var pm message.PrivateMessage
				if err := message.Unmarshal(msgs[i], &pm); err != nil {
					b.Fatal(err)
				}
				i++
				d, err := UnprotectPrivate(e.s, &pm, e.recv, e.senderDataSecret, e.groupContext)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := d.Verify(e.pub); err != nil {
					b.Fatal(err)
				}
				if err := d.Consume(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkPrivateMessageProtect1KB isolates the symmetric part of
// sending (no signature): encrypt content and sender data.
func BenchmarkPrivateMessageProtect1KB(b *testing.B) {
	for _, id := range []ciphersuite.ID{1, 3, 5} {
		b.Run(id.String(), func(b *testing.B) {
			e := newEnv(b, id)
			ac, err := SignContent(e.s, e.signer, message.WireFormatPrivateMessage, benchContent(e), e.groupContext)
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(1024)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := ProtectPrivate(e.s, ac, e.send, e.senderDataSecret, 0, e.rnd); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// bigCommit is a signed commit whose UpdatePath encrypts a path secret to
// n nodes, as a self-update in a fresh tree of n members does (about 82
// bytes a node with X25519 and AES-128-GCM).
func bigCommit(b testing.TB, e *env, n int) *message.AuthenticatedContent {
	fc := e.content(message.ContentCommit)
	nodes := make([]message.UpdatePathNode, 14)
	per := n / len(nodes)
	for i := range nodes {
		nodes[i].EncryptionKey = make([]byte, 32)
		nodes[i].EncryptedPathSecret = make([]message.HPKECiphertext, per)
		for j := range nodes[i].EncryptedPathSecret {
			nodes[i].EncryptedPathSecret[j] = message.HPKECiphertext{KEMOutput: make([]byte, 32), Ciphertext: make([]byte, 48)}
		}
	}
	fc.Commit.Path = &message.UpdatePath{Nodes: nodes, LeafNode: message.LeafNode{
		EncryptionKey: make([]byte, 32),
		SignatureKey:  e.pub,
		Credential:    message.Credential{Type: message.CredentialBasic, Identity: []byte("alice")},
		Source:        message.LeafNodeSourceCommit,
		ParentHash:    make([]byte, e.s.HashSize()),
		Signature:     make([]byte, 64),
	}}
	return e.sign(b, message.WireFormatPublicMessage, fc)
}

// BenchmarkConfirmedTranscriptHash10k measures the confirmed transcript
// hash (RFC 9420, Section 8.2) of a commit of a fresh tree of 10,000
// members: about 820 KB to encode and hash.
func BenchmarkConfirmedTranscriptHash10k(b *testing.B) {
	e := newEnv(b, ciphersuite.MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519)
	ac := bigCommit(b, e, 10000)
	interim := make([]byte, e.s.HashSize())
	in, err := ConfirmedTranscriptHashInput(ac)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(in)))
	b.ResetTimer()
	for range b.N {
		if _, err := ConfirmedTranscriptHash(e.s, interim, ac); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkUnprotectPublic10k measures the membership tag check of the
// same commit (RFC 9420, Section 6.2).
func BenchmarkUnprotectPublic10k(b *testing.B) {
	e := newEnv(b, ciphersuite.MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519)
	ac := bigCommit(b, e, 10000)
	key := make([]byte, e.s.HashSize())
	pm, err := ProtectPublic(e.s, ac, key, e.groupContext)
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for range b.N {
		if _, err := UnprotectPublic(e.s, pm, key, e.groupContext); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkReceiveCommit measures the framing part of receiving a commit
// whose UpdatePath encrypts to 14 members (as in a full tree) or 10,000
// (a fresh tree, the commit of BenchmarkConfirmedTranscriptHash10k): check
// the membership tag (PublicMessage) or decrypt it (PrivateMessage), verify
// the signature and compute the confirmed transcript hash.
func BenchmarkReceiveCommit(b *testing.B) {
	for _, n := range []int{14, 10000} {
		b.Run(fmt.Sprintf("path=%d", n), func(b *testing.B) { benchReceiveCommit(b, n) })
	}
}

func benchReceiveCommit(b *testing.B, n int) {
	e := newEnv(b, ciphersuite.MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519)
	ac := bigCommit(b, e, n)
	interim := make([]byte, e.s.HashSize())
	pub, err := ProtectPublic(e.s, ac, e.membershipKey, e.groupContext)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("PublicMessage", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			u, err := UnprotectPublic(e.s, pub, e.membershipKey, e.groupContext)
			if err != nil {
				b.Fatal(err)
			}
			got, err := u.Verify(e.pub)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := ConfirmedTranscriptHash(e.s, interim, got); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("VerifyPublic", func(b *testing.B) {
		m, content, err := message.UnmarshalMLSMessageContent(message.MustMarshal(message.NewPublicMessage(pub)))
		if err != nil {
			b.Fatal(err)
		}
		k := &PublicKeys{MembershipKey: e.membershipKey, GroupContext: e.groupContext, SignatureKey: e.pub, Interim: interim}
		b.ReportAllocs()
		for b.Loop() {
			got, err := VerifyPublic(e.s, m.PublicMessage, content, k)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := ConfirmedTranscriptHash(e.s, interim, got); err != nil {
				b.Fatal(err)
			}
		}
	})
	acPriv, err := SignContent(e.s, e.signer, message.WireFormatPrivateMessage, &ac.Content, e.groupContext)
	if err != nil {
		b.Fatal(err)
	}
	acPriv.Auth.ConfirmationTag = ac.Auth.ConfirmationTag
	priv, err := ProtectPrivate(e.s, acPriv, e.send, e.senderDataSecret, 0, e.rnd)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("PrivateMessage", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			d, err := UnprotectPrivate(e.s, priv, e.recv, e.senderDataSecret, e.groupContext)
			if err != nil {
				b.Fatal(err)
			}
			got, err := d.Verify(e.pub)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := ConfirmedTranscriptHash(e.s, interim, got); err != nil {
				b.Fatal(err)
			}
		}
	})
}
