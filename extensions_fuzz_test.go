package mls_test

import (
	"bytes"
	"testing"

	"github.com/mlskit/mls"
	"github.com/mlskit/mls/internal/fuzzcorpus"
)

// extensionSeeds are the encodings the draft-ietf-mls-extensions decoders'
// seeds start from: valid values made by the encoders and a few invalid
// ones (unsorted, repeated, truncated).
func extensionSeeds(t *testing.T) (dicts, aads, lists [][]byte) {
	d := mls.AppDataDictionary{}.Set(mls.ComponentAppComponents, []byte{2, 0x80, 1}).Set(mls.ComponentSafeAAD, []byte{0}).Set(0x8001, []byte("data"))
	for _, v := range []mls.AppDataDictionary{{}, d} {
		b, err := v.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		dicts = append(dicts, b)
	}
	dicts = append(dicts, []byte{0x08, 0x80, 0x02, 0x01, 'b', 0x80, 0x01, 0x01, 'a'}, []byte{0x04, 0x80, 0x01, 0x05, 'b'})
	for _, items := range [][]mls.SafeAADItem{nil, {{Component: 1, Data: []byte("x")}, {Component: 0x8001, Data: []byte{}}}} {
		b, err := mls.MarshalSafeAAD(items)
		if err != nil {
			t.Fatal(err)
		}
		aads = append(aads, b)
	}
	aads = append(aads, []byte{0x08, 0x00, 0x01, 0x01, 'a', 0x00, 0x01, 0x01, 'b'}, []byte("hello"))
	for _, l := range []mls.ComponentsList{{}, {1, 2, 0x0a0a, 0x8001}} {
		b, err := l.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		lists = append(lists, b)
	}
	lists = append(lists, []byte{3, 0, 1, 0}, []byte{4, 0, 1, 0, 1})
	return dicts, aads, lists
}

// TestGenerateFuzzCorpusExtensions writes the seeds of the three fuzz
// targets below (MLS_UPDATE_FUZZ_CORPUS=1).
func TestGenerateFuzzCorpusExtensions(t *testing.T) {
	if !fuzzcorpus.Updating(t) {
		return
	}
	dicts, aads, lists := extensionSeeds(t)
	for name, seeds := range map[string][][]byte{"FuzzAppDataDictionary": dicts, "FuzzSafeAAD": aads, "FuzzComponentsList": lists} {
		c := fuzzcorpus.New(".", name)
		for _, s := range seeds {
			c.Add(s)
		}
		c.Write(t)
	}
}

// FuzzAppDataDictionary: parse never panics, and what parses re-encodes to
// the same bytes.
func FuzzAppDataDictionary(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := mls.ParseAppDataDictionary(b)
		if err != nil {
			return
		}
		out, err := d.MarshalBinary()
		if err != nil || !bytes.Equal(out, b) {
			t.Fatalf("re-encoding %x gave %x, %v", b, out, err)
		}
	})
}

// FuzzSafeAAD: as FuzzAppDataDictionary, for SafeAAD.
func FuzzSafeAAD(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		items, err := mls.ParseSafeAAD(b)
		if err != nil {
			return
		}
		out, err := mls.MarshalSafeAAD(items)
		if err != nil || !bytes.Equal(out, b) {
			t.Fatalf("re-encoding %x gave %x, %v", b, out, err)
		}
	})
}

// FuzzComponentsList: as FuzzAppDataDictionary, for ComponentsList.
func FuzzComponentsList(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		l, err := mls.ParseComponentsList(b)
		if err != nil {
			return
		}
		out, err := l.MarshalBinary()
		if err != nil || !bytes.Equal(out, b) {
			t.Fatalf("re-encoding %x gave %x, %v", b, out, err)
		}
	})
}
