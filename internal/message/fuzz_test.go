package message

import (
	"bytes"
	"errors"
	"os"
	"testing"

	"github.com/mlskit/mls/internal/fuzzcorpus"
	"github.com/mlskit/mls/internal/vectors"
	"github.com/mlskit/mls/internal/wire"
)

// The fuzz targets check parse -> marshal -> same bytes: every input that
// decodes must be canonical, pass the Marshal consistency checks and
// re-encode exactly; every input that does not decode must fail with a
// *wire.Error. Their seeds are the corpus under testdata/fuzz (real
// messages, key packages, trees and commits of groups in every suite,
// written by the root package's TestGenerateFuzzCorpus) and, when the
// official vectors are present, messages.json.

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

// seed adds the chosen field of every messages.json vector, if the vector
// files are there (and fails under CI=true if they are not), and fails if
// neither they nor testdata/fuzz give a seed.
func seed(f *testing.F, pick func(v *messagesVector) [][]byte) {
	n := 0
	dir, err := vectors.Dir()
	if err != nil {
		f.Fatal(err)
	}
	if _, err := vectors.Read(dir, "messages.json"); errors.Is(err, vectors.ErrNotFound) && os.Getenv("CI") != "true" {
		f.Logf("seeding from testdata/fuzz only: %v", err)
	} else {
		for _, v := range loadMessages(f) {
			for _, b := range pick(&v) {
				f.Add(b)
				n++
			}
		}
	}
	fuzzcorpus.Require(f, n)
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
