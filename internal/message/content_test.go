package message

import (
	"bytes"
	"errors"
	"testing"

	"github.com/mlskit/mls/internal/wire"
)

// TestUnmarshalMLSMessageContent: the content returned for a
// PublicMessage is the encoding of its FramedContent, a copy that does not
// share the input; other wire formats have none; errors are those of
// UnmarshalMLSMessage.
func TestUnmarshalMLSMessageContent(t *testing.T) {
	for name, m := range sampleMessages() {
		t.Run(name, func(t *testing.T) {
			in := MustMarshal(m)
			got, content, err := UnmarshalMLSMessageContent(in)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(MustMarshal(got), in) {
				t.Fatal("decodes differently from UnmarshalMLSMessage")
			}
			if got.PublicMessage == nil {
				if content != nil {
					t.Fatalf("content %x for a %d", content, got.WireFormat)
				}
				return
			}
			if want := MustMarshal(&got.PublicMessage.Content); !bytes.Equal(content, want) {
				t.Fatalf("content %x, want %x", content, want)
			}
			want := bytes.Clone(content)
			clear(in)
			if !bytes.Equal(content, want) {
				t.Fatal("content shares the input")
			}
		})
	}
	in := MustMarshal(sampleMessages()["public/commit/member"])
	for _, b := range [][]byte{in[:len(in)-1], append(bytes.Clone(in), 0)} {
		if _, content, err := UnmarshalMLSMessageContent(b); err == nil || content != nil {
			t.Fatalf("bad input: content %x, error %v", content, err)
		} else if _, want := UnmarshalMLSMessage(b); !errors.Is(err, wire.ErrTruncated) && !errors.Is(err, wire.ErrTrailingData) || err.Error() != want.Error() {
			t.Fatalf("error %v, UnmarshalMLSMessage's %v", err, want)
		}
	}
}

// freshCommit is a member's commit whose UpdatePath encrypts a path secret
// to 10,000 members, as a self-update in a fresh tree of that size does
// (X25519 and AES-128-GCM: 32 and 48 bytes a ciphertext).
func freshCommit() *MLSMessage {
	m := samplePublicMessage(ContentCommit, Sender{Type: SenderMember, LeafIndex: 1})
	path := sampleUpdatePath()
	path.Nodes = make([]UpdatePathNode, 14)
	for i := range path.Nodes {
		n := &path.Nodes[i]
		n.EncryptionKey = b(32, byte(i))
		n.EncryptedPathSecret = make([]HPKECiphertext, 10000/len(path.Nodes))
		for j := range n.EncryptedPathSecret {
			n.EncryptedPathSecret[j] = HPKECiphertext{KEMOutput: b(32, byte(j)), Ciphertext: b(48, byte(j))}
		}
	}
	m.Content.Commit.Path = path
	return NewPublicMessage(m)
}

// BenchmarkUnmarshalFreshCommit decodes freshCommit (about 820 KB) with
// the content as received, as ParseMessage does.
func BenchmarkUnmarshalFreshCommit(b *testing.B) {
	enc := MustMarshal(freshCommit())
	b.SetBytes(int64(len(enc)))
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := UnmarshalMLSMessageContent(enc); err != nil {
			b.Fatal(err)
		}
	}
}
