package mls

import (
	"bytes"
	"context"
	"fmt"
	"reflect"
	"testing"

	"github.com/mlskit/mls/credential"
	"github.com/mlskit/mls/storage"
	"github.com/mlskit/mls/storage/memory"
)

// recordingStore remembers every value written to it.
type recordingStore struct {
	storage.Store
	puts *[][]byte
}

func (s recordingStore) Update(ctx context.Context, fn func(storage.Tx) error) error {
	return s.Store.Update(ctx, func(tx storage.Tx) error { return fn(recordingTx{tx, s.puts}) })
}

type recordingTx struct {
	storage.Tx
	puts *[][]byte
}

func (tx recordingTx) Put(bucket string, key, value []byte) error {
	*tx.puts = append(*tx.puts, append(append([]byte(bucket), key...), value...))
	return tx.Tx.Put(bucket, key, value)
}

// groupSecrets lists the secrets of g's current epoch and its private keys.
func groupSecrets(t *testing.T, g *Group) map[string][]byte {
	t.Helper()
	k := g.st.keys
	out := map[string][]byte{
		"sender data secret": k.SenderDataSecret(), "exporter secret": k.ExporterSecret(),
		"external secret": k.ExternalSecret(), "confirmation key": k.ConfirmationKey(), "membership key": k.MembershipKey(),
		"resumption psk": k.ResumptionPSK(), "epoch authenticator": k.EpochAuthenticator(),
		"leaf private key": g.st.priv.LeafPrivateKey(),
	}
	// The encryption secret is deleted once the secret tree is built
	// (RFC 9420, Section 9.2); its first leaf secrets stand in for it.
	if enc, err := k.EncryptionSecret(); err == nil {
		out["encryption secret"] = enc
	}
	for _, x := range g.st.priv.Nodes() {
		if priv, ok := g.st.priv.NodePrivateKey(x); ok {
			out[fmt.Sprintf("node private key %d", x)] = priv
		}
	}
	return out
}

// walkBytes calls f for every byte slice and string reachable from v.
func walkBytes(v reflect.Value, seen map[uintptr]bool, f func([]byte)) {
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() || seen[v.Pointer()] {
			return
		}
		seen[v.Pointer()] = true
		walkBytes(v.Elem(), seen, f)
	case reflect.Interface:
		if !v.IsNil() {
			walkBytes(v.Elem(), seen, f)
		}
	case reflect.Struct:
		for i := range v.NumField() {
			walkBytes(v.Field(i), seen, f)
		}
	case reflect.Slice:
		if v.Type().Elem().Kind() == reflect.Uint8 {
			f(v.Bytes())
			return
		}
		for i := range v.Len() {
			walkBytes(v.Index(i), seen, f)
		}
	case reflect.Array:
		if v.Type().Elem().Kind() == reflect.Uint8 {
			b := make([]byte, v.Len())
			reflect.Copy(reflect.ValueOf(b), v)
			f(b)
			return
		}
		for i := range v.Len() {
			walkBytes(v.Index(i), seen, f)
		}
	case reflect.Map:
		it := v.MapRange()
		for it.Next() {
			walkBytes(it.Key(), seen, f)
			walkBytes(it.Value(), seen, f)
		}
	case reflect.String:
		f([]byte(v.String()))
	}
}

// TestPublicGroupHoldsNoSecret: a PublicGroup that follows a group through
// commits, proposals and a Welcome holds none of the group's secrets, in
// memory or in its store.
func TestPublicGroupHoldsNoSecret(t *testing.T) {
	ctx := context.Background()
	vg := newVGroup(t, vSetup{n: 3})
	alice, bob := vg.m[0], vg.m[1]
	var puts [][]byte
	store := recordingStore{memory.New(), &puts}
	pg, err := alice.g.PublicGroup(ctx, store, credential.AcceptAll)
	if err != nil {
		t.Fatal(err)
	}
	secrets := map[string][]byte{}
	collect := func() {
		for _, m := range vg.active() {
			for name, s := range groupSecrets(t, m.g) {
				if len(s) >= 16 {
					secrets[m.name+": "+name] = s
				}
			}
		}
	}
	collect()
	follow := func(msg *Message) {
		t.Helper()
		p, err := pg.Process(ctx, wireMsg(t, msg))
		if err != nil {
			t.Fatal(err)
		}
		switch p.Kind {
		case KindProposal:
			err = pg.StorePendingProposal(ctx, p.Proposal)
		case KindCommit:
			err = pg.Merge(ctx, p.Commit)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	for range 3 {
		prop, _, err := bob.g.ProposeSelfUpdate(ctx)
		if err != nil {
			t.Fatal(err)
		}
		follow(prop)
		for _, m := range vg.active() {
			if m != bob {
				p := accept(t, m, wireMsg(t, prop))
				if err := m.g.StorePendingProposal(ctx, p.Proposal); err != nil {
					t.Fatal(err)
				}
			}
		}
		res, err := alice.g.Commit(ctx, CommitOptions{ForcePath: true})
		if err != nil {
			t.Fatal(err)
		}
		if err := alice.g.MergePendingCommit(ctx); err != nil {
			t.Fatal(err)
		}
		follow(res.Commit)
		for _, m := range vg.active() {
			if m != alice {
				p := accept(t, m, wireMsg(t, res.Commit))
				if err := m.g.MergeStagedCommit(ctx, p.Commit); err != nil {
					t.Fatal(err)
				}
			}
		}
		collect()
	}
	check := func(where string, b []byte) {
		for name, s := range secrets {
			if bytes.Contains(b, s) {
				t.Fatalf("%s holds %s", where, name)
			}
		}
	}
	n := 0
	walkBytes(reflect.ValueOf(pg), map[uintptr]bool{}, func(b []byte) { n++; check("the PublicGroup's memory", b) })
	for _, p := range puts {
		check("the PublicGroup's store", p)
	}
	if n < 10 || len(secrets) < 20 {
		t.Fatalf("walked %d byte strings for %d secrets: the test looked at too little", n, len(secrets))
	}
	// The walk does find a secret where there is one.
	found := false
	walkBytes(reflect.ValueOf(alice.g), map[uintptr]bool{}, func(b []byte) {
		found = found || bytes.Contains(b, alice.g.st.keys.MembershipKey())
	})
	if !found {
		t.Fatal("the walk does not find the membership key in a member's Group")
	}
	t.Logf("%d byte strings in memory and %d stored values checked against %d secrets", n, len(puts), len(secrets))
}
