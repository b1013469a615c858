package keyschedule

import (
	"bytes"
	"testing"

	"github.com/mlskit/mls/ciphersuite"
)

// FuzzEpochSecretsUnmarshal checks that decoding never panics and that what
// decodes re-encodes to the same bytes. Seeds are the epochs of
// key-schedule.json.
func FuzzEpochSecretsUnmarshal(f *testing.F) {
	var vs []keyScheduleVector
	readVectorsF(f, "key-schedule.json", &vs)
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
	if n == 0 {
		f.Fatal("key-schedule.json gave no seeds")
	}
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
