package message_test

import (
	"fmt"

	"github.com/mlskit/mls/internal/message"
)

// Example builds a PrivateMessage, wraps it in an MLSMessage, encodes it
// and decodes it again.
func Example() {
	m := message.NewPrivateMessage(&message.PrivateMessage{
		GroupID:             []byte("g"),
		Epoch:               1,
		ContentType:         message.ContentApplication,
		AuthenticatedData:   []byte{},
		EncryptedSenderData: []byte{0xaa},
		Ciphertext:          []byte{0xbb, 0xcc},
	})
	b, err := m.Marshal()
	if err != nil {
		panic(err)
	}
	fmt.Printf("%x\n", b)

	back, err := message.UnmarshalMLSMessage(b)
	if err != nil {
		panic(err)
	}
	fmt.Println(back.WireFormat == message.WireFormatPrivateMessage, back.PrivateMessage.Epoch)

	_, err = message.UnmarshalMLSMessage(b[:len(b)-1])
	fmt.Println(err)
	// Output:
	// 0001000201670000000000000001010001aa02bbcc
	// true 1
	// mls: decoding PrivateMessage.ciphertext at byte 18: truncated input: 2 bytes claimed, 1 remain
}
