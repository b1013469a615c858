package main

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"runtime"
	"testing"
	"testing/cryptotest"

	"github.com/mlskit/mls"
	"github.com/mlskit/mls/credential"
	"github.com/mlskit/mls/internal/fuzzcorpus"
	"github.com/mlskit/mls/storage/memory"
)

// TestGenerateFuzzCorpus writes testdata/fuzz/FuzzInspect: the structures
// of a real two-member group (key packages bare and wrapped, a Welcome, a
// GroupInfo with its tree, the tree alone, a commit and an application
// message), in binary, hex and base64, and short prefixes of each. It runs
// only with MLS_UPDATE_FUZZ_CORPUS=1.
func TestGenerateFuzzCorpus(t *testing.T) {
	if !fuzzcorpus.Updating(t) {
		return
	}
	cryptotest.SetGlobalRandom(t, 9420)
	// HPKE encryptions run in parallel; one worker fixes the order in
	// which they draw randomness.
	procs := runtime.GOMAXPROCS(1)
	t.Cleanup(func() { runtime.GOMAXPROCS(procs) })
	ctx := context.Background()
	suite := mls.MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519
	client := func(name string) *mls.Client {
		c, err := mls.NewClient(ctx, memory.New(), credential.NewBasic([]byte(name)), nil, credential.AcceptAll, mls.ClientOptions{Now: fuzzcorpus.Now, Lifetime: fuzzcorpus.Lifetime})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	alice, bob := client("alice"), client("bob")
	kp, err := bob.NewKeyPackage(ctx, suite, mls.KeyPackageOptions{LastResort: true})
	if err != nil {
		t.Fatal(err)
	}
	g, err := alice.CreateGroup(ctx, suite, mls.GroupConfig{Lifetime: fuzzcorpus.Lifetime, JoinConfig: mls.JoinConfig{UseRatchetTreeExtension: true}})
	if err != nil {
		t.Fatal(err)
	}
	res, err := g.AddMembers(ctx, kp)
	if err != nil {
		t.Fatal(err)
	}
	if err := g.MergePendingCommit(ctx); err != nil {
		t.Fatal(err)
	}
	must := func(b []byte, err error) []byte {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	gi, err := g.ExportGroupInfo(true)
	if err != nil {
		t.Fatal(err)
	}
	app, err := g.Seal(ctx, []byte("hi"), nil)
	if err != nil {
		t.Fatal(err)
	}
	inputs := [][]byte{
		must(kp.MarshalBinary()), must(kp.MarshalMessage()),
		must(res.Welcome.MarshalBinary()), must(res.Commit.MarshalBinary()),
		must(gi.MarshalBinary()), must(g.ExportRatchetTree()), must(app.MarshalBinary()),
	}
	c := fuzzcorpus.New(".", "FuzzInspect")
	for _, b := range inputs {
		c.Add(b)
		c.Add([]byte(hex.EncodeToString(b)))
		c.Add([]byte(base64.StdEncoding.EncodeToString(b)))
		c.Add(b[:len(b)/2])
	}
	c.Write(t)
}
