package keyschedule

import (
	"bytes"
	"errors"
	"os"
	"testing"

	"github.com/mlskit/mls/ciphersuite"
	"github.com/mlskit/mls/internal/fuzzcorpus"
	"github.com/mlskit/mls/internal/vectors"
)

// FuzzEpochSecretsUnmarshal checks that decoding never panics and that what
// decodes re-encodes to the same bytes. Seeds are the corpus under
// testdata/fuzz (TestGenerateFuzzCorpus) and, when the vector files are
// present, the epochs of key-schedule.json.
func FuzzEpochSecretsUnmarshal(f *testing.F) {
	var vs []keyScheduleVector
	if dir, err := vectors.Dir(); err != nil {
		f.Fatal(err)
	} else if _, err := vectors.Read(dir, "key-schedule.json"); errors.Is(err, vectors.ErrNotFound) && os.Getenv("CI") != "true" {
		f.Logf("seeding without the vectors: %v", err)
	} else {
		readVectorsF(f, "key-schedule.json", &vs)
	}
	n := 0
	for _, v := range vs {
		s, err := ciphersuite.Lookup(v.CipherSuite)
		if err != nil {
			f.Fatal(err)
		}
		init, err := NewInitSecret(s, v.InitialInitSecret)
		if err != nil {
			f.Fatal(err)
		}
		for _, ep := range v.Epochs {
			j, err := init.Joiner(ep.CommitSecret, ep.GroupContext)
			if err != nil {
				f.Fatal(err)
			}
			psk, err := NewPSKSecret(s, ep.PSKSecret)
			if err != nil {
				f.Fatal(err)
			}
			m, err := j.Intermediate(psk)
			if err != nil {
				f.Fatal(err)
			}
			es, err := m.Epoch(ep.GroupContext)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(marshal(f, es))
			n++
			init = es.InitSecret()
		}
	}
	fuzzcorpus.Require(f, n)
	f.Fuzz(func(t *testing.T, b []byte) {
		var es EpochSecrets
		if err := es.UnmarshalBinary(b); err != nil {
			return
		}
		if out := marshal(t, &es); !bytes.Equal(out, b) {
			t.Fatalf("re-encoding differs:\n in %x\nout %x", b, out)
		}
	})
}

// TestGenerateFuzzCorpus writes testdata/fuzz/FuzzEpochSecretsUnmarshal:
// the epoch secrets of epochFor (fixed inputs) in every suite, with and
// without the encryption secret. It runs only with
// MLS_UPDATE_FUZZ_CORPUS=1.
func TestGenerateFuzzCorpus(t *testing.T) {
	if !fuzzcorpus.Updating(t) {
		return
	}
	c := fuzzcorpus.New(".", "FuzzEpochSecretsUnmarshal")
	for _, id := range ciphersuite.All() {
		es := epochFor(t, suite(t, id))
		c.Add(marshal(t, es))
		es.DeleteEncryptionSecret()
		c.Add(marshal(t, es))
	}
	c.Write(t)
}
