package message

import (
	"bytes"
	"errors"
	"testing"

	"github.com/mlskit/mls/internal/wire"
)

// The fuzz targets check parse -> marshal -> same bytes: every input that
// decodes must be canonical, pass the Marshal consistency checks and
// re-encode exactly; every input that does not decode must fail with a
// *wire.Error. They are seeded from messages.json.

func checkDecodeError(t *testing.T, err error) {
	t.Helper()
	var we *wire.Error
	if !errors.As(err, &we) {
		t.Fatalf("decode error %v (%T) is not a *wire.Error", err, err)
	}
}

func checkSame(t *testing.T, in []byte, out []byte, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("decoded value does not marshal: %v", err)
	}
	if !bytes.Equal(out, in) {
		t.Fatalf("re-encoding differs:\n  in %x\n out %x", in, out)
	}
}

// seed adds the chosen field of every messages.json vector, failing if
// there is none.
func seed(f *testing.F, pick func(v *messagesVector) [][]byte) {
	n := 0
	for _, v := range loadMessages(f) {
		for _, b := range pick(&v) {
			f.Add(b)
			n++
		}
	}
	if n == 0 {
		f.Fatal("no seeds found in messages.json")
	}
}

// body strips the MLSMessage header (version and wire_format).
func body(b []byte) []byte {
	if len(b) < 4 {
		return nil
	}
	return b[4:]
}

func FuzzMLSMessage(f *testing.F) {
	seed(f, func(v *messagesVector) [][]byte {
		return [][]byte{v.MLSWelcome, v.MLSGroupInfo, v.MLSKeyPackage, v.PublicMessageApplication,
			v.PublicMessageProposal, v.PublicMessageCommit, v.PrivateMessage}
	})
	f.Fuzz(func(t *testing.T, in []byte) {
		m, err := UnmarshalMLSMessage(in)
		if err != nil {
			checkDecodeError(t, err)
			return
		}
		out, err := m.Marshal()
		checkSame(t, in, out, err)
	})
}

func FuzzKeyPackage(f *testing.F) {
	seed(f, func(v *messagesVector) [][]byte { return [][]byte{body(v.MLSKeyPackage), v.AddProposal} })
	f.Fuzz(func(t *testing.T, in []byte) {
		kp, err := UnmarshalKeyPackage(in)
		if err != nil {
			checkDecodeError(t, err)
			return
		}
		out, err := kp.Marshal()
		checkSame(t, in, out, err)
	})
}

func FuzzWelcome(f *testing.F) {
	seed(f, func(v *messagesVector) [][]byte { return [][]byte{body(v.MLSWelcome)} })
	f.Fuzz(func(t *testing.T, in []byte) {
		w, err := UnmarshalWelcome(in)
		if err != nil {
			checkDecodeError(t, err)
			return
		}
		out, err := w.Marshal()
		checkSame(t, in, out, err)
	})
}

func FuzzGroupInfo(f *testing.F) {
	seed(f, func(v *messagesVector) [][]byte { return [][]byte{body(v.MLSGroupInfo)} })
	f.Fuzz(func(t *testing.T, in []byte) {
		g, err := UnmarshalGroupInfo(in)
		if err != nil {
			checkDecodeError(t, err)
			return
		}
		out, err := g.Marshal()
		checkSame(t, in, out, err)
	})
}

func FuzzRatchetTree(f *testing.F) {
	seed(f, func(v *messagesVector) [][]byte { return [][]byte{v.RatchetTree} })
	f.Fuzz(func(t *testing.T, in []byte) {
		tree, err := UnmarshalRatchetTree(in)
		sparse, serr := UnmarshalSparseRatchetTree(in, 1<<31)
		if (err == nil) != (serr == nil) {
			t.Fatalf("dense decoding: %v, sparse decoding: %v", err, serr)
		}
		if err != nil {
			checkDecodeError(t, err)
			return
		}
		checkSameSparse(t, tree, sparse)
		out, err := tree.Marshal()
		checkSame(t, in, out, err)
	})
}

func FuzzGroupSecrets(f *testing.F) {
	seed(f, func(v *messagesVector) [][]byte { return [][]byte{v.GroupSecrets} })
	f.Fuzz(func(t *testing.T, in []byte) {
		g, err := UnmarshalGroupSecrets(in)
		if err != nil {
			checkDecodeError(t, err)
			return
		}
		out, err := g.Marshal()
		checkSame(t, in, out, err)
	})
}

func FuzzCommit(f *testing.F) {
	seed(f, func(v *messagesVector) [][]byte { return [][]byte{v.Commit} })
	f.Fuzz(func(t *testing.T, in []byte) {
		var c Commit
		if err := Unmarshal(in, &c); err != nil {
			checkDecodeError(t, err)
			return
		}
		out, err := c.Marshal()
		checkSame(t, in, out, err)
	})
}
