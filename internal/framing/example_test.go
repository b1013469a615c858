package framing_test

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/mlskit/mls/ciphersuite"
	"github.com/mlskit/mls/internal/framing"
	"github.com/mlskit/mls/internal/message"
	"github.com/mlskit/mls/internal/secrettree"
)

// Example sends an application message from leaf 0 of a two-member group
// as a PrivateMessage and receives it.
func Example() {
	s, _ := ciphersuite.Lookup(ciphersuite.MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519)
	signer, _ := s.GenerateSignatureKey(nil)
	pub, _ := s.SignaturePublicKey(signer)

	// The epoch's secrets, normally from the key schedule.
	encryptionSecret := bytes.Repeat([]byte{1}, s.HashSize())
	senderDataSecret := bytes.Repeat([]byte{2}, s.HashSize())
	gc := &message.GroupContext{Version: message.MLS10, CipherSuite: s.ID(), GroupID: []byte("group"), Epoch: 1,
		TreeHash: make([]byte, 32), ConfirmedTranscriptHash: make([]byte, 32), Extensions: []message.Extension{}}
	groupContext, _ := message.Marshal(gc)

	// Sender.
	sendTree, _ := secrettree.New(s, encryptionSecret, 2, secrettree.Config{})
	fc := &message.FramedContent{GroupID: gc.GroupID, Epoch: gc.Epoch,
		Sender:      message.Sender{Type: message.SenderMember, LeafIndex: 0},
		ContentType: message.ContentApplication, ApplicationData: []byte("hi")}
	ac, err := framing.SignContent(s, signer, message.WireFormatPrivateMessage, fc, groupContext)
	if err != nil {
		panic(err)
	}
	pm, err := framing.ProtectPrivate(s, ac, sendTree, senderDataSecret, 32, nil)
	if err != nil {
		panic(err)
	}

	// Receiver: decrypt, look up the sender's key, verify, accept.
	recvTree, _ := secrettree.New(s, encryptionSecret, 2, secrettree.Config{})
	d, err := framing.UnprotectPrivate(s, pm, recvTree, senderDataSecret, groupContext)
	if err != nil {
		panic(err)
	}
	fmt.Println("sender leaf:", d.Sender().LeafIndex, "generation:", d.Generation())
	got, err := d.Verify(pub) // pub: the signature key of leaf d.Sender().LeafIndex
	if err != nil {
		panic(err)
	}
	if err := d.Consume(); err != nil {
		panic(err)
	}
	fmt.Printf("%s\n", got.Content.ApplicationData)

	// A replay no longer decrypts.
	_, err = framing.UnprotectPrivate(s, pm, recvTree, senderDataSecret, groupContext)
	fmt.Println(errors.Is(err, framing.ErrGeneration))
	// Output:
	// sender leaf: 0 generation: 0
	// hi
	// true
}
