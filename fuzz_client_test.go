package mls_test

import (
	"bytes"
	"context"
	"testing"

	"github.com/mlskit/mls"
	"github.com/mlskit/mls/internal/fuzzcorpus"
)

// welcomeFixture is a Welcome of the fuzz fixture's group for carol, whose
// key package's private keys are in carol's store.
type welcomeFixture struct {
	carol         *client
	welcome, tree []byte
}

func newWelcomeFixture(t *testing.T) *welcomeFixture {
	ctx := context.Background()
	alice := fuzzGroup(t, regressSuite, false, nil, "alice")[0]
	carol := newClient(t, "carol", regressSuite)
	res, err := alice.group.AddMembers(ctx, fuzzKeyPackage(t, carol, regressSuite))
	if err != nil {
		t.Fatal(err)
	}
	if err := alice.group.MergePendingCommit(ctx); err != nil {
		t.Fatal(err)
	}
	w, err := res.Welcome.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	rt, err := alice.group.ExportRatchetTree()
	if err != nil {
		t.Fatal(err)
	}
	return &welcomeFixture{carol: carol, welcome: w, tree: rt}
}

// FuzzStageWelcome feeds arbitrary Welcome messages and ratchet trees to
// Client.StageWelcome for a client that holds the key package they may be
// for: nothing may panic, every error has a class, and staging stores
// nothing (the key package stays). The corpus holds the fixture's real
// Welcome and tree.
func FuzzStageWelcome(f *testing.F) {
	fuzzcorpus.Require(f, 0)
	ctx := context.Background()
	var fx *welcomeFixture
	f.Fuzz(func(t *testing.T, welcome, tree []byte) {
		if fx == nil {
			fx = newWelcomeFixture(t)
		}
		m, err := mls.ParseMessage(welcome)
		if err != nil {
			if errorClass(err) == "" {
				t.Fatalf("ParseMessage: error outside the classes: %v", err)
			}
			return
		}
		c := fuzzClient(fx.carol.store, fx.carol.id)
		_, err = c.StageWelcome(ctx, m, mls.WelcomeOptions{RatchetTree: tree})
		if err != nil && errorClass(err) == "" {
			t.Fatalf("StageWelcome: error outside the classes: %v (%T)", err, err)
		}
		if err != nil && bytes.Equal(welcome, fx.welcome) && bytes.Equal(tree, fx.tree) {
			// The seed must get through: it is what makes the corpus
			// reach the deep checks (TestGenerateFuzzCorpus wrote it
			// from this fixture).
			t.Fatalf("the fixture's own Welcome fails: %v", err)
		}
		kps, err := c.KeyPackages(ctx)
		if err != nil || len(kps) != 1 {
			t.Fatalf("after StageWelcome the client holds %d key packages (%v), want 1", len(kps), err)
		}
	})
}
