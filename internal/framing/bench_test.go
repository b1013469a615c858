package framing

import (
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
