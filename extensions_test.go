package mls_test

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/mlskit/mls"
)

// appComponents builds the app_data_dictionary extension a leaf or a
// GroupContext carries to list components (draft-ietf-mls-extensions,
// "Negotiating Extensions and Components"), encoded by hand: the
// dictionary's vector of one entry (component 0x0001, data = the
// ComponentsList).
func appComponents(ids ...uint16) mls.Extension {
	list := []byte{byte(2 * len(ids))}
	for _, id := range ids {
		list = append(list, byte(id>>8), byte(id))
	}
	entry := append([]byte{0x00, 0x01, byte(len(list))}, list...)
	return mls.Extension{Type: mls.ExtensionAppDataDictionary, Data: append([]byte{byte(len(entry))}, entry...)}
}

// componentGroup creates alice's group with GroupContext extensions gc and
// her leaf extension leaf (nil: none).
func componentGroup(t *testing.T, gc []mls.Extension, leaf []mls.Extension) (*pqMember, error) {
	t.Helper()
	alice := newPQMember(t, "alice", mls.MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519)
	var err error
	alice.group, err = alice.client.CreateGroup(context.Background(), mls.MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519, mls.GroupConfig{
		GroupContextExtensions: gc,
		LeafExtensions:         leaf,
		Capabilities:           mls.Capabilities{Extensions: []uint16{mls.ExtensionAppDataDictionary}},
		JoinConfig:             mls.JoinConfig{UseRatchetTreeExtension: true},
	})
	return alice, err
}

func memberKP(t *testing.T, m *pqMember, leaf []mls.Extension) *mls.KeyPackage {
	t.Helper()
	kp, err := m.client.NewKeyPackage(context.Background(), mls.MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519, mls.KeyPackageOptions{
		LeafExtensions: leaf,
		Capabilities:   mls.Capabilities{Extensions: []uint16{mls.ExtensionAppDataDictionary}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return kp
}

// TestAppDataDictionary: the encoding of app_data_dictionary against hand
// encodings, Set and Remove keep it sorted, and every malformed form fails
// with ErrMalformed (every strict prefix, trailing bytes, entries out of
// order or repeated); a dictionary in the GroupContext and in a leaf is
// found by FindAppDataDictionary.
func TestAppDataDictionary(t *testing.T) {
	d := mls.AppDataDictionary{}.Set(0x8002, []byte("b")).Set(0x0001, []byte{0}).Set(0x8001, []byte("a"))
	want := []byte{0x0c, 0x00, 0x01, 0x01, 0x00, 0x80, 0x01, 0x01, 'a', 0x80, 0x02, 0x01, 'b'}
	got, err := d.MarshalBinary()
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("MarshalBinary = %x, %v; want %x", got, err, want)
	}
	back, err := mls.ParseAppDataDictionary(want)
	if err != nil || len(back) != 3 || back[1].ID != 0x8001 || string(back[2].Data) != "b" {
		t.Fatalf("ParseAppDataDictionary = %v, %v", back, err)
	}
	if v, ok := back.Set(0x8001, []byte("c")).Get(0x8001); !ok || string(v) != "c" {
		t.Fatal("Set did not replace")
	}
	if r, ok := back.Remove(0x8001); !ok || len(r) != 2 {
		t.Fatal("Remove")
	}
	if _, ok := back.Remove(0x7777); ok {
		t.Fatal("Remove of an absent component reported it present")
	}
	for i := 0; i < len(want); i++ {
		if _, err := mls.ParseAppDataDictionary(want[:i]); !errors.Is(err, mls.ErrMalformed) {
			t.Fatalf("prefix of %d bytes: %v", i, err)
		}
	}
	for name, b := range map[string][]byte{
		"trailing":   append(append([]byte{}, want...), 0),
		"unsorted":   {0x08, 0x80, 0x02, 0x01, 'b', 0x80, 0x01, 0x01, 'a'},
		"repeated":   {0x08, 0x80, 0x01, 0x01, 'b', 0x80, 0x01, 0x01, 'a'},
		"data overs": {0x04, 0x80, 0x01, 0x05, 'b'},
	} {
		if _, err := mls.ParseAppDataDictionary(b); !errors.Is(err, mls.ErrMalformed) {
			t.Errorf("%s: got %v, want ErrMalformed", name, err)
		}
	}
	if _, err := (mls.AppDataDictionary{{ID: 2}, {ID: 1}}).MarshalBinary(); !errors.Is(err, mls.ErrInvalidArgument) {
		t.Fatalf("unsorted MarshalBinary: %v", err)
	}
	ext, _ := d.Extension()
	if _, _, err := mls.FindAppDataDictionary([]mls.Extension{ext, ext}); !errors.Is(err, mls.ErrMalformed) {
		t.Fatalf("two dictionaries: %v", err)
	}

	// In the GroupContext and in the creator's leaf.
	alice, err := componentGroup(t, []mls.Extension{ext}, []mls.Extension{ext})
	if err != nil {
		t.Fatal(err)
	}
	for what, exts := range map[string][]mls.Extension{"group context": alice.group.Extensions(), "leaf": alice.group.Members()[0].LeafNode().Extensions()} {
		got, ok, err := mls.FindAppDataDictionary(exts)
		if err != nil || !ok || len(got) != 3 {
			t.Fatalf("%s: %v %v %v", what, got, ok, err)
		}
		if v, _ := got.Get(0x8002); string(v) != "b" {
			t.Fatalf("%s: component 0x8002 = %q", what, v)
		}
	}
}

// TestComponentsList: encoding, and malformed lists.
func TestComponentsList(t *testing.T) {
	b, err := mls.ComponentsList{1, 0x8001}.MarshalBinary()
	if err != nil || !bytes.Equal(b, []byte{4, 0, 1, 0x80, 1}) {
		t.Fatalf("%x %v", b, err)
	}
	if _, err := (mls.ComponentsList{1, 1}).MarshalBinary(); !errors.Is(err, mls.ErrInvalidArgument) {
		t.Fatalf("repeated: %v", err)
	}
	for name, in := range map[string][]byte{"odd": {3, 0, 1, 0}, "repeated": {4, 0, 1, 0, 1}, "trailing": {2, 0, 1, 9}, "short": {4, 0, 1}} {
		if _, err := mls.ParseComponentsList(in); !errors.Is(err, mls.ErrMalformed) {
			t.Errorf("%s: got %v", name, err)
		}
	}
	l, err := mls.ParseComponentsList([]byte{4, 0x0a, 0x0a, 0x80, 0x01})
	if err != nil || !l.Contains(0x8001) || l.Contains(0x0a0a) {
		t.Fatalf("a GREASE component must parse and never count as supported: %v %v", l, err)
	}
}

// TestComponentNegotiation: a GroupContext's app_components are required
// of every leaf (draft-ietf-mls-extensions, "Negotiating Extensions and
// Components"): a creator, an added member, a GroupContextExtensions
// proposal that requires more than the members list are refused, with the
// group unchanged; a GREASE component never satisfies a requirement.
func TestComponentNegotiation(t *testing.T) {
	ctx := context.Background()
	req := appComponents(0x8001)
	if _, err := componentGroup(t, []mls.Extension{req}, []mls.Extension{appComponents(0x8002)}); err == nil {
		t.Fatal("a creator without the required component created the group")
	} else {
		wantRule(t, err, "ValSem106")
	}
	if _, err := componentGroup(t, []mls.Extension{appComponents(0x0a0a)}, []mls.Extension{appComponents(0x0a0a)}); err == nil {
		t.Fatal("a GREASE component satisfied a requirement")
	}
	alice, err := componentGroup(t, []mls.Extension{req}, []mls.Extension{appComponents(0x8001, 0x8003)})
	if err != nil {
		t.Fatal(err)
	}
	if l, ok, err := alice.group.RequiredComponents(); err != nil || !ok || len(l) != 1 || l[0] != 0x8001 {
		t.Fatalf("RequiredComponents = %v %v %v", l, ok, err)
	}
	bob, charlie := newPQMember(t, "bob", mls.MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519), newPQMember(t, "charlie", mls.MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519)
	epoch := alice.group.Epoch()
	_, err = alice.group.AddMembers(ctx, memberKP(t, charlie, []mls.Extension{appComponents(0x8002)}))
	wantRule(t, err, "ValSem106")
	_, err = alice.group.AddMembers(ctx, memberKP(t, charlie, nil))
	wantRule(t, err, "ValSem106")
	if alice.group.Epoch() != epoch || alice.group.PendingCommit() != nil || len(alice.group.Members()) != 1 {
		t.Fatal("a refused Add changed the group")
	}
	bobKP := memberKP(t, bob, []mls.Extension{appComponents(0x8001)})
	if l, ok, err := bobKP.LeafNode().SupportedComponents(); err != nil || !ok || !l.Contains(0x8001) {
		t.Fatalf("SupportedComponents = %v %v %v", l, ok, err)
	}
	res, err := alice.group.AddMembers(ctx, bobKP)
	if err != nil {
		t.Fatal(err)
	}
	if err := alice.group.MergePendingCommit(ctx); err != nil {
		t.Fatal(err)
	}
	sw, err := bob.client.StageWelcome(ctx, res.Welcome, mls.WelcomeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if bob.group, err = sw.Join(ctx); err != nil {
		t.Fatal(err)
	}
	// Requiring 0x8003 too: alice lists it, bob does not.
	epoch = alice.group.Epoch()
	_, err = alice.group.Commit(ctx, mls.CommitOptions{GroupContextExtensions: []mls.Extension{appComponents(0x8001, 0x8003)}})
	wantRule(t, err, "ValSem209")
	if alice.group.Epoch() != epoch || alice.group.PendingCommit() != nil {
		t.Fatal("a refused commit changed the group")
	}
	pqAgree(t, alice, bob)
}

// TestSafeExportSecret: all members get the same secret per component in
// an epoch, of KDF.Nh bytes, different for different components, the same
// when asked twice, and new in the next epoch.
func TestSafeExportSecret(t *testing.T) {
	ctx := context.Background()
	ms := customGroup(t, nil, nil, nil)
	get := func(m *pqMember, c mls.ComponentID) []byte {
		t.Helper()
		b, err := m.group.SafeExportSecret(c)
		if err != nil {
			t.Fatal(err)
		}
		if len(b) != 32 {
			t.Fatalf("%d-byte secret, want 32 (SHA-256)", len(b))
		}
		return b
	}
	a1, a2 := get(ms[0], 1), get(ms[0], 0x8001)
	if bytes.Equal(a1, a2) {
		t.Fatal("two components got the same secret")
	}
	if !bytes.Equal(a1, get(ms[0], 1)) {
		t.Fatal("the same component got two secrets in one epoch")
	}
	exp, _ := ms[0].group.ExportSecret("", nil, 32)
	if bytes.Equal(a1, exp) {
		t.Fatal("the safe exporter equals the RFC 9420 exporter")
	}
	for _, m := range ms[1:] {
		if !bytes.Equal(get(m, 1), a1) || !bytes.Equal(get(m, 0x8001), a2) {
			t.Fatalf("%s disagrees", m.name)
		}
	}
	res, err := ms[1].group.SelfUpdate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := ms[1].group.MergePendingCommit(ctx); err != nil {
		t.Fatal(err)
	}
	ms[0].process(t, res.Commit)
	if next := get(ms[0], 1); bytes.Equal(next, a1) || !bytes.Equal(next, get(ms[1], 1)) {
		t.Fatal("the next epoch's secret is old or not shared")
	}
	// A member reloaded from its store exports the same (the secret is
	// persisted with the epoch).
	g, err := ms[0].client.LoadGroup(ctx, ms[0].group.GroupID())
	if err != nil {
		t.Fatal(err)
	}
	if b, err := g.SafeExportSecret(1); err != nil || !bytes.Equal(b, get(ms[1], 1)) {
		t.Fatalf("reloaded: %v", err)
	}
}

// TestSafeAAD: encoding against a hand encoding, every malformed form
// fails with ErrMalformed, unsorted items are refused, and a group whose
// GroupContext has safe_aad carries SafeAAD items end to end; SealSafe is
// refused in a group without it.
func TestSafeAAD(t *testing.T) {
	ctx := context.Background()
	items := []mls.SafeAADItem{{Component: 1, Data: []byte("x")}, {Component: 0x8001, Data: []byte{}}}
	want := []byte{0x07, 0x00, 0x01, 0x01, 'x', 0x80, 0x01, 0x00}
	got, err := mls.MarshalSafeAAD(items)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("MarshalSafeAAD = %x %v, want %x", got, err, want)
	}
	if empty, _ := mls.MarshalSafeAAD(nil); !bytes.Equal(empty, []byte{0}) {
		t.Fatalf("no items = %x, want the zero-length vector 00", empty)
	}
	for i := 0; i < len(want); i++ {
		if _, err := mls.ParseSafeAAD(want[:i]); !errors.Is(err, mls.ErrMalformed) {
			t.Fatalf("prefix of %d bytes: %v", i, err)
		}
	}
	for name, b := range map[string][]byte{
		"trailing": append(append([]byte{}, want...), 1),
		"unsorted": {0x08, 0x80, 0x01, 0x01, 'a', 0x00, 0x01, 0x01, 'b'},
		"repeated": {0x08, 0x00, 0x01, 0x01, 'a', 0x00, 0x01, 0x01, 'b'},
		"plain":    []byte("hello"),
	} {
		if _, err := mls.ParseSafeAAD(b); !errors.Is(err, mls.ErrMalformed) {
			t.Errorf("%s: got %v, want ErrMalformed", name, err)
		}
	}
	if _, err := mls.MarshalSafeAAD([]mls.SafeAADItem{{Component: 2}, {Component: 1}}); !errors.Is(err, mls.ErrInvalidArgument) {
		t.Fatalf("unsorted: %v", err)
	}

	plain := customGroup(t, nil, nil, nil)
	if _, err := plain[0].group.SealSafe(ctx, []byte("m"), items); !errors.Is(err, mls.ErrInvalidArgument) {
		t.Fatalf("SealSafe without safe_aad: %v", err)
	}

	// safe_aad (component 2) with an empty list in the GroupContext.
	safe := mls.AppDataDictionary{}.Set(mls.ComponentSafeAAD, []byte{0})
	ext, _ := safe.Extension()
	alice, err := componentGroup(t, []mls.Extension{ext}, nil)
	if err != nil {
		t.Fatal(err)
	}
	bob := newPQMember(t, "bob", mls.MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519)
	res, err := alice.group.AddMembers(ctx, memberKP(t, bob, nil))
	if err != nil {
		t.Fatal(err)
	}
	if err := alice.group.MergePendingCommit(ctx); err != nil {
		t.Fatal(err)
	}
	sw, err := bob.client.StageWelcome(ctx, res.Welcome, mls.WelcomeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if bob.group, err = sw.Join(ctx); err != nil {
		t.Fatal(err)
	}
	if uses, err := bob.group.UsesSafeAAD(); err != nil || !uses {
		t.Fatalf("UsesSafeAAD = %v %v", uses, err)
	}
	msg, err := alice.group.SealSafe(ctx, []byte("m"), items)
	if err != nil {
		t.Fatal(err)
	}
	p, err := bob.group.Process(ctx, roundTrip(t, msg))
	if err != nil {
		t.Fatal(err)
	}
	gotItems, err := p.SafeAAD()
	if err != nil || len(gotItems) != 2 {
		t.Fatalf("SafeAAD = %v %v", gotItems, err)
	}
	if v, ok := mls.SafeAADItemData(gotItems, 1); !ok || string(v) != "x" {
		t.Fatalf("item of component 1 = %q %v", v, ok)
	}
	// A sender that ignores Safe AAD: the message is authentic, its AAD
	// does not parse.
	msg, err = alice.group.Seal(ctx, []byte("m"), []byte("raw"))
	if err != nil {
		t.Fatal(err)
	}
	if p, err = bob.group.Process(ctx, roundTrip(t, msg)); err != nil {
		t.Fatal(err)
	}
	if _, err := p.SafeAAD(); !errors.Is(err, mls.ErrMalformed) {
		t.Fatalf("raw AAD in a Safe AAD group: %v", err)
	}
}

// TestLastResortForms: the default form is OpenMLS's extension 0x000a,
// the draft's form is the last_resort_key_package component; each parses
// as last resort, a dictionary without the component does not, an unknown
// form is refused, and a draft-form key package is reused for two groups.
func TestLastResortForms(t *testing.T) {
	ctx := context.Background()
	suite := mls.MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519
	bob := newPQMember(t, "bob", suite)
	has := func(kp *mls.KeyPackage, typ uint16) bool {
		for _, e := range kp.Extensions() {
			if e.Type == typ {
				return true
			}
		}
		return false
	}
	for _, c := range []struct {
		form          mls.LastResortForm
		openmls, dict bool
	}{{mls.LastResortOpenMLS, true, false}, {mls.LastResortDraft, false, true}, {mls.LastResortBoth, true, true}} {
		kp, err := bob.client.NewKeyPackage(ctx, suite, mls.KeyPackageOptions{LastResort: true, LastResortForm: c.form})
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := kp.MarshalBinary()
		back, err := mls.ParseKeyPackage(raw)
		if err != nil {
			t.Fatal(err)
		}
		if !back.IsLastResort() || has(back, 0x000a) != c.openmls || has(back, 0x0006) != c.dict {
			t.Fatalf("form %d: last resort %v, 0x000a %v, 0x0006 %v", c.form, back.IsLastResort(), has(back, 0x000a), has(back, 0x0006))
		}
		if c.dict {
			d, _, _ := mls.FindAppDataDictionary(back.Extensions())
			if v, ok := d.Get(mls.ComponentLastResortKeyPackage); !ok || len(v) != 0 {
				t.Fatalf("form %d: component 4 = %x %v, want empty data", c.form, v, ok)
			}
		}
	}
	other := mls.AppDataDictionary{}.Set(0x8001, []byte("x"))
	ext, _ := other.Extension()
	kp, err := bob.client.NewKeyPackage(ctx, suite, mls.KeyPackageOptions{Extensions: []mls.Extension{ext}})
	if err != nil || kp.IsLastResort() {
		t.Fatalf("a dictionary without component 4 is last resort: %v", err)
	}
	if _, err := bob.client.NewKeyPackage(ctx, suite, mls.KeyPackageOptions{LastResort: true, LastResortForm: 7}); !errors.Is(err, mls.ErrInvalidArgument) {
		t.Fatalf("unknown form: %v", err)
	}
	bad := mls.Extension{Type: mls.ExtensionAppDataDictionary, Data: []byte{1}}
	if _, err := bob.client.NewKeyPackage(ctx, suite, mls.KeyPackageOptions{LastResort: true, LastResortForm: mls.LastResortDraft, Extensions: []mls.Extension{bad}}); !errors.Is(err, mls.ErrInvalidArgument) {
		t.Fatalf("draft form over a malformed dictionary: %v", err)
	}
	// The user's dictionary keeps its entries and gains component 4.
	kp, err = bob.client.NewKeyPackage(ctx, suite, mls.KeyPackageOptions{LastResort: true, LastResortForm: mls.LastResortDraft, Extensions: []mls.Extension{ext}})
	if err != nil {
		t.Fatal(err)
	}
	d, _, _ := mls.FindAppDataDictionary(kp.Extensions())
	if _, ok := d.Get(0x8001); !ok || !kp.IsLastResort() {
		t.Fatal("the draft form lost the user's dictionary entries")
	}
	// Reused: two groups add the same draft-form key package.
	for _, name := range []string{"alice", "carol"} {
		m := newPQMember(t, name, suite)
		if m.group, err = m.client.CreateGroup(ctx, suite, mls.GroupConfig{JoinConfig: mls.JoinConfig{UseRatchetTreeExtension: true}}); err != nil {
			t.Fatal(err)
		}
		res, err := m.group.AddMembers(ctx, kp)
		if err != nil {
			t.Fatal(err)
		}
		if err := m.group.MergePendingCommit(ctx); err != nil {
			t.Fatal(err)
		}
		sw, err := bob.client.StageWelcome(ctx, res.Welcome, mls.WelcomeOptions{})
		if err != nil {
			t.Fatalf("join of %s's group with the last-resort key package: %v", name, err)
		}
		if _, err := sw.Join(ctx); err != nil {
			t.Fatal(err)
		}
	}
}
