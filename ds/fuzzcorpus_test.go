package ds

import (
	"testing"

	"github.com/mlskit/mls"
	"github.com/mlskit/mls/credential"
	"github.com/mlskit/mls/internal/fuzzcorpus"
	"github.com/mlskit/mls/storage/memory"
)

// TestGenerateFuzzCorpus writes FuzzHeaders' seeds, made by the library:
// a commit as a PublicMessage and as a PrivateMessage, an application
// message, and a GroupInfo with and without its tree. Run with
// MLS_UPDATE_FUZZ_CORPUS=1; otherwise it does nothing.
func TestGenerateFuzzCorpus(t *testing.T) {
	if !fuzzcorpus.Updating(t) {
		return
	}
	ctx := t.Context()
	suite := mls.MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519
	opts := func(seed uint64) mls.ClientOptions {
		return mls.ClientOptions{Now: fuzzcorpus.Now, Rand: fuzzcorpus.Rand(seed), Lifetime: fuzzcorpus.Lifetime}
	}
	bob, err := mls.NewClient(ctx, memory.New(), credential.NewBasic([]byte("bob")), nil, credential.AcceptAll, opts(2))
	if err != nil {
		t.Fatal(err)
	}
	c := fuzzcorpus.New(".", "FuzzHeaders")
	add := func(m *mls.Message) {
		t.Helper()
		b, err := m.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		c.Add(b)
	}
	for _, encrypt := range []bool{false, true} {
		o := opts(1)
		o.WireFormatPolicy.OutgoingPrivate = encrypt
		alice, err := mls.NewClient(ctx, memory.New(), credential.NewBasic([]byte("alice")), nil, credential.AcceptAll, o)
		if err != nil {
			t.Fatal(err)
		}
		g, err := alice.CreateGroup(ctx, suite, mls.GroupConfig{})
		if err != nil {
			t.Fatal(err)
		}
		kp, err := bob.NewKeyPackage(ctx, suite, mls.KeyPackageOptions{})
		if err != nil {
			t.Fatal(err)
		}
		res, err := g.AddMembers(ctx, kp)
		if err != nil {
			t.Fatal(err)
		}
		add(res.Commit)
		if err := g.MergePendingCommit(ctx); err != nil {
			t.Fatal(err)
		}
		msg, err := g.Seal(ctx, []byte("hello"), nil)
		if err != nil {
			t.Fatal(err)
		}
		add(msg)
		for _, withTree := range []bool{false, true} {
			gi, err := g.ExportGroupInfo(withTree)
			if err != nil {
				t.Fatal(err)
			}
			add(gi)
		}
	}
	c.Write(t)
}
