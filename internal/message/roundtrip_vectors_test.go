package message

import (
	"bytes"
	"testing"
)

// TestMessagesVectorsRoundTrip decodes every field of every messages.json
// vector as the type the vector README gives and re-encodes it to the same
// bytes.
func TestMessagesVectorsRoundTrip(t *testing.T) {
	vs := loadMessages(t)
	n := 0
	for i := range vs {
		for _, f := range vs[i].fields() {
			if len(f.b) == 0 {
				t.Errorf("vector %d: %s is empty", i, f.name)
				continue
			}
			v := f.v()
			if err := Unmarshal(f.b, v); err != nil {
				t.Errorf("vector %d: %s: %v", i, f.name, err)
				continue
			}
			got, err := Marshal(v.(Encodable))
			if err != nil {
				t.Errorf("vector %d: %s: marshal: %v", i, f.name, err)
				continue
			}
			if !bytes.Equal(got, f.b) {
				t.Errorf("vector %d: %s: re-encoding differs\n got %x\nwant %x", i, f.name, got, f.b)
			}
			n++
		}
	}
	t.Logf("%d fields round-tripped", n)
}
