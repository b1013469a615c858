package group

import (
	"bytes"
	"errors"
	"testing"

	"github.com/mlskit/mls/internal/message"
)

// TestApplyAppData checks the draft's placement rules with hand-encoded
// dictionaries: a new app_data_dictionary goes at the end of the
// extensions, an existing one stays where it is, entries stay sorted.
func TestApplyAppData(t *testing.T) {
	other := message.Extension{Type: 0xff01, Data: []byte{1}}
	up := func(id uint16, data string) *AppDataUpdate {
		return &AppDataUpdate{Component: id, Op: AppDataUpdateOp, Update: []byte(data)}
	}
	// No dictionary yet: one is appended after the other extension.
	got, err := applyAppData([]message.Extension{other}, []*AppDataUpdate{up(0x8002, "b"), up(0x8001, "a")}, ReplaceData)
	if err != nil {
		t.Fatal(err)
	}
	// component_data<V>: 8 bytes; then 0x8001 "a", 0x8002 "b".
	want := []byte{8, 0x80, 0x01, 1, 'a', 0x80, 0x02, 1, 'b'}
	if len(got) != 2 || got[0].Type != other.Type || got[1].Type != ExtensionAppDataDictionary || !bytes.Equal(got[1].Data, want) {
		t.Fatalf("got %+v, want [other, dictionary %x]", got, want)
	}
	// An existing dictionary keeps its place; updates go through the
	// application function in order.
	var seen [][]byte
	fn := func(id uint16, cur []byte, present bool, ups [][]byte) ([]byte, error) {
		if id != 0x8001 || !present || string(cur) != "a" {
			return nil, errors.New("unexpected call")
		}
		seen = ups
		return []byte("xy"), nil
	}
	got, err = applyAppData([]message.Extension{got[1], other}, []*AppDataUpdate{up(0x8001, "1"), up(0x8001, "2")}, fn)
	if err != nil {
		t.Fatal(err)
	}
	want = []byte{9, 0x80, 0x01, 2, 'x', 'y', 0x80, 0x02, 1, 'b'}
	if len(got) != 2 || got[0].Type != ExtensionAppDataDictionary || !bytes.Equal(got[0].Data, want) || len(seen) != 2 || string(seen[0]) != "1" || string(seen[1]) != "2" {
		t.Fatalf("got %+v (updates %q), want dictionary %x first", got, seen, want)
	}
	// A remove drops the entry; the (now smaller) dictionary stays.
	got, err = applyAppData(got, []*AppDataUpdate{{Component: 0x8002, Op: AppDataRemoveOp}}, ReplaceData)
	if err != nil {
		t.Fatal(err)
	}
	if want = []byte{5, 0x80, 0x01, 2, 'x', 'y'}; !bytes.Equal(got[0].Data, want) {
		t.Fatalf("after remove %x, want %x", got[0].Data, want)
	}
}
