package keyschedule

import (
	"bytes"
	"errors"
	"testing"

	"github.com/mlskit/mls/ciphersuite"
	"github.com/mlskit/mls/internal/wire"
)

func marshal(t testing.TB, es *EpochSecrets) []byte {
	t.Helper()
	b, err := es.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestEpochSecretsRoundTrip(t *testing.T) {
	for _, id := range ciphersuite.All() {
		es := epochFor(t, suite(t, id))
		for _, deleted := range []bool{false, true} {
			if deleted {
				es.DeleteEncryptionSecret()
			}
			b := marshal(t, es)
			var back EpochSecrets
			if err := back.UnmarshalBinary(b); err != nil {
				t.Fatalf("%v: %v", id, err)
			}
			if !back.Equal(es) || !bytes.Equal(marshal(t, &back), b) {
				t.Errorf("%v (deleted %v): round trip differs", id, deleted)
			}
			if _, err := back.EncryptionSecret(); deleted != errors.Is(err, ErrDeleted) {
				t.Errorf("%v (deleted %v): encryption_secret: %v", id, deleted, err)
			}
		}
	}
}

func TestEpochSecretsRejects(t *testing.T) {
	es := epochFor(t, suite(t, 1))
	b := marshal(t, es)
	orig := *es
	for i := range len(b) {
		if err := es.UnmarshalBinary(b[:i]); err == nil {
			t.Fatalf("prefix of %d bytes accepted", i)
		}
	}
	if err := es.UnmarshalBinary(append(append([]byte(nil), b...), 0)); !errors.Is(err, wire.ErrTrailingData) {
		t.Errorf("trailing byte: %v", err)
	}
	if !es.Equal(&orig) {
		t.Error("a failed UnmarshalBinary changed the secrets")
	}
	build := func(version uint8, suite uint16, lens ...int) []byte {
		e := wire.NewEncoder(nil)
		e.U8(version)
		e.U16(suite)
		for _, n := range lens {
			e.Opaque(seq(n, 0))
		}
		return e.MustBytes()
	}
	good := []int{32, 32, 32, 32, 32, 32, 32, 32, 32}
	if err := es.UnmarshalBinary(build(1, 1, good...)); err != nil {
		t.Fatalf("hand-built state rejected: %v", err)
	}
	for name, c := range map[string]struct {
		b    []byte
		want error
	}{
		"version 3": {build(3, 1, good...), wire.ErrInvalidValue},
		"version 2 without application_export_secret": {build(2, 1, good...), wire.ErrTruncated},
		"version 2 short application_export_secret":   {build(2, 1, append(good, 31)...), ErrInvalidLength},
		"unknown suite":      {build(1, 0x99, good...), ciphersuite.ErrUnsupported},
		"short sender data":  {build(1, 1, 31, 32, 32, 32, 32, 32, 32, 32, 32), ErrInvalidLength},
		"long init":          {build(1, 1, 32, 32, 32, 32, 32, 32, 32, 32, 33), ErrInvalidLength},
		"Nh of another hash": {build(1, 5, good...), ErrInvalidLength},
		"empty exporter":     {build(1, 1, 32, 32, 0, 32, 32, 32, 32, 32, 32), ErrInvalidLength},
		"missing init":       {build(1, 1, good[:8]...), wire.ErrTruncated},
	} {
		err := es.UnmarshalBinary(c.b)
		var we *wire.Error
		if !errors.Is(err, c.want) {
			t.Errorf("%s: got %v, want %v", name, err, c.want)
		} else if c.want != ciphersuite.ErrUnsupported && !errors.As(err, &we) {
			t.Errorf("%s: error does not say where: %v", name, err)
		}
	}
	if err := es.UnmarshalBinary(build(2, 1, append(good, 32)...)); err != nil {
		t.Errorf("version 2 state rejected: %v", err)
	}
	if _, err := es.SafeExportSecret(1); err != nil {
		t.Errorf("safe export from a version 2 state: %v", err)
	}
	if err := es.UnmarshalBinary(build(1, 1, good...)); err != nil {
		t.Fatal(err)
	}
	if _, err := es.SafeExportSecret(1); !errors.Is(err, ErrNoApplicationExport) {
		t.Errorf("safe export from a version 1 state: got %v, want ErrNoApplicationExport", err)
	}
	if err := es.UnmarshalBinary(build(1, 1, 32, 0, 32, 32, 32, 32, 32, 32, 32)); err != nil {
		t.Errorf("deleted encryption_secret rejected: %v", err)
	}
}
