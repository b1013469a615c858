package keyschedule

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/mlskit/mls/ciphersuite"
	"github.com/mlskit/mls/internal/vectors"
	"github.com/mlskit/mls/internal/wire"
)

func suite(t testing.TB, id ciphersuite.ID) *ciphersuite.Suite {
	t.Helper()
	s, err := ciphersuite.Lookup(id)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func seq(n int, start byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = start + byte(i)
	}
	return b
}

var testGroupContext = []byte("an encoded GroupContext stands here")

// epochFor runs the schedule from a fixed init secret.
func epochFor(t testing.TB, s *ciphersuite.Suite) *EpochSecrets {
	t.Helper()
	init, err := NewInitSecret(s, seq(s.HashSize(), 1))
	if err != nil {
		t.Fatal(err)
	}
	j, err := init.Joiner(seq(s.HashSize(), 100), testGroupContext)
	if err != nil {
		t.Fatal(err)
	}
	m, err := j.Intermediate(nil)
	if err != nil {
		t.Fatal(err)
	}
	es, err := m.Epoch(testGroupContext)
	if err != nil {
		t.Fatal(err)
	}
	return es
}

// TestByHand follows the diagram of RFC 9420, Section 8 with the suite's
// primitives.
func TestByHand(t *testing.T) {
	for _, id := range ciphersuite.All() {
		s := suite(t, id)
		nh := s.HashSize()
		initB, commit, psk := seq(nh, 1), seq(nh, 100), seq(nh, 200)
		gc := testGroupContext
		joiner := s.ExpandWithLabel(s.Extract(initB, commit), "joiner", gc, nh)
		mid := s.Extract(joiner, psk)
		welcome := s.DeriveSecret(mid, "welcome")
		epoch := s.ExpandWithLabel(mid, "epoch", gc, nh)

		init, err := NewInitSecret(s, initB)
		if err != nil {
			t.Fatal(err)
		}
		j, err := init.Joiner(commit, gc)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(j.Bytes(), joiner) {
			t.Errorf("%v: joiner_secret", id)
		}
		p, err := NewPSKSecret(s, psk)
		if err != nil {
			t.Fatal(err)
		}
		m, err := j.Intermediate(p)
		if err != nil {
			t.Fatal(err)
		}
		w := m.Welcome()
		if !bytes.Equal(w.Bytes(), welcome) {
			t.Errorf("%v: welcome_secret", id)
		}
		key, nonce := w.KeyNonce()
		if !bytes.Equal(key, s.ExpandWithLabel(welcome, "key", nil, s.AEADKeySize())) || !bytes.Equal(nonce, s.ExpandWithLabel(welcome, "nonce", nil, s.AEADNonceSize())) {
			t.Errorf("%v: welcome key/nonce", id)
		}
		es, err := m.Epoch(gc)
		if err != nil {
			t.Fatal(err)
		}
		enc, err := es.EncryptionSecret()
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range []struct {
			label string
			got   []byte
		}{
			{"sender data", es.SenderDataSecret()}, {"encryption", enc}, {"exporter", es.ExporterSecret()},
			{"external", es.ExternalSecret()}, {"confirm", es.ConfirmationKey()}, {"membership", es.MembershipKey()},
			{"resumption", es.ResumptionPSK()}, {"authentication", es.EpochAuthenticator()}, {"init", es.InitSecret().Bytes()},
		} {
			if !bytes.Equal(c.got, s.DeriveSecret(epoch, c.label)) {
				t.Errorf("%v: %q secret", id, c.label)
			}
		}
		// The safe exporter of draft-ietf-mls-extensions: the root is
		// DeriveSecret(epoch_secret, "application_export"); leaf 0 is 16
		// steps left, leaf 0xFFFF 16 steps right, leaf 0x8001 right, 14
		// times left, right.
		walk := func(dirs string) []byte {
			x := s.DeriveSecret(epoch, "application_export")
			for _, d := range dirs {
				lr := "left"
				if d == 'R' {
					lr = "right"
				}
				x = s.ExpandWithLabel(x, "tree", []byte(lr), s.HashSize())
			}
			return x
		}
		for comp, dirs := range map[uint16]string{0: "LLLLLLLLLLLLLLLL", 0xFFFF: "RRRRRRRRRRRRRRRR", 0x8001: "RLLLLLLLLLLLLLLR"} {
			if got, err := es.SafeExportSecret(comp); err != nil || !bytes.Equal(got, walk(dirs)) {
				t.Errorf("%v: safe export of component 0x%04x: %v", id, comp, err)
			}
		}
		exp := s.ExpandWithLabel(s.DeriveSecret(s.DeriveSecret(epoch, "exporter"), "label"), "exported", s.Hash([]byte("ctx")), 17)
		if got, err := es.Export("label", []byte("ctx"), 17); err != nil || !bytes.Equal(got, exp) {
			t.Errorf("%v: exporter: %v", id, err)
		}
		cth := seq(nh, 9)
		tag := s.MAC(s.DeriveSecret(epoch, "confirm"), cth)
		if !bytes.Equal(es.ConfirmationTag(cth), tag) || !es.VerifyConfirmationTag(cth, tag) {
			t.Errorf("%v: confirmation tag", id)
		}
		tbm := []byte("tbm")
		mt := s.MAC(s.DeriveSecret(epoch, "membership"), tbm)
		if !bytes.Equal(es.MembershipTag(tbm), mt) || !es.VerifyMembershipTag(tbm, mt) {
			t.Errorf("%v: membership tag", id)
		}
		_, pub, err := s.DeriveKeyPair(s.DeriveSecret(epoch, "external"))
		if err != nil {
			t.Fatal(err)
		}
		kp, err := es.ExternalKeyPair()
		if err != nil || !bytes.Equal(kp.PublicKey(), pub) {
			t.Errorf("%v: external_pub: %v", id, err)
		}
	}
}

func TestVerifyRejects(t *testing.T) {
	s := suite(t, 1)
	es := epochFor(t, s)
	cth := seq(32, 3)
	tag := es.ConfirmationTag(cth)
	bad := append([]byte(nil), tag...)
	bad[31] ^= 1
	for name, c := range map[string]struct{ cth, tag []byte }{
		"flipped bit": {cth, bad}, "truncated": {cth, tag[:31]}, "empty": {cth, nil}, "other hash": {seq(32, 4), tag},
	} {
		if es.VerifyConfirmationTag(c.cth, c.tag) {
			t.Errorf("confirmation tag, %s: accepted", name)
		}
		if es.VerifyMembershipTag(c.cth, c.tag) {
			t.Errorf("membership tag, %s: accepted", name)
		}
	}
}

func TestZeroDefaults(t *testing.T) {
	s := suite(t, 2)
	init, _ := NewInitSecret(s, seq(32, 1))
	a, err := init.Joiner(nil, testGroupContext)
	if err != nil {
		t.Fatal(err)
	}
	b, err := init.Joiner(make([]byte, 32), testGroupContext)
	if err != nil {
		t.Fatal(err)
	}
	if !a.Equal(b) {
		t.Error("nil commit_secret is not the zero vector")
	}
	c, _ := init.Joiner(seq(32, 0), testGroupContext)
	if a.Equal(c) {
		t.Error("commit_secret ignored")
	}
	m1, _ := a.Intermediate(nil)
	m2, _ := a.Intermediate(ZeroPSKSecret(s))
	if !m1.Welcome().Equal(m2.Welcome()) {
		t.Error("nil psk is not the zero psk_secret")
	}
	empty, err := DerivePSKSecret(s, nil)
	if err != nil || !bytes.Equal(empty.Bytes(), make([]byte, 32)) {
		t.Errorf("no PSKs: %x %v", empty.Bytes(), err)
	}
	if d, _ := init.Joiner(nil, []byte("another GroupContext")); d.Equal(a) {
		t.Error("GroupContext ignored")
	}
}

func TestLengthErrors(t *testing.T) {
	s := suite(t, 5) // Nh = 64
	var le *LengthError
	_, err := NewInitSecret(s, seq(32, 0))
	if !errors.As(err, &le) || le.What != "init_secret" || le.Got != 32 || le.Want != 64 || !errors.Is(err, ErrInvalidLength) {
		t.Errorf("NewInitSecret: %v", err)
	}
	if !strings.Contains(fmt.Sprint(err), "init_secret of 32 bytes, want 64") {
		t.Errorf("message: %v", err)
	}
	for name, f := range map[string]func() error{
		"joiner":   func() error { _, err := NewJoinerSecret(s, nil); return err },
		"psk":      func() error { _, err := NewPSKSecret(s, seq(65, 0)); return err },
		"external": func() error { _, err := NewExternalKeyPair(s, seq(63, 0)); return err },
		"commitSecret": func() error {
			init, _ := NewInitSecret(s, seq(64, 0))
			_, err := init.Joiner(seq(32, 0), testGroupContext)
			return err
		},
	} {
		if err := f(); !errors.Is(err, ErrInvalidLength) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := NewInitSecret(nil, seq(32, 0)); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("nil suite: %v", err)
	}
}

func TestArgumentErrors(t *testing.T) {
	s := suite(t, 1)
	init, _ := NewInitSecret(s, seq(32, 0))
	if _, err := init.Joiner(nil, nil); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("empty GroupContext for joiner: %v", err)
	}
	j, _ := init.Joiner(nil, testGroupContext)
	m, _ := j.Intermediate(nil)
	if _, err := m.Epoch(nil); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("empty GroupContext for epoch: %v", err)
	}
	other, _ := NewPSKSecret(suite(t, 3), seq(32, 0)) // same Nh, other suite
	if _, err := j.Intermediate(other); !errors.Is(err, ErrSuiteMismatch) {
		t.Errorf("PSK of another suite: %v", err)
	}
	es := epochFor(t, s)
	for _, n := range []int{-1, 255*32 + 1} {
		if _, err := es.Export("x", nil, n); !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("exporter length %d: %v", n, err)
		}
	}
	if out, err := es.Export("x", nil, 255*32); err != nil || len(out) != 255*32 {
		t.Errorf("exporter length 255*Nh: %v", err)
	}
	if _, err := DerivePSKSecret(s, []PSK{{ID: nil, Secret: seq(32, 0)}}); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("empty PreSharedKeyID: %v", err)
	}
	if _, err := DerivePSKSecret(s, make([]PSK, 65536)); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("65536 PSKs: %v", err)
	}
}

func TestPSKOrderAndLabel(t *testing.T) {
	s := suite(t, 1)
	a := PSK{ID: encodeExternalPSKID([]byte("a"), seq(32, 0)), Secret: seq(32, 1)}
	b := PSK{ID: encodeExternalPSKID([]byte("b"), seq(32, 0)), Secret: seq(32, 2)}
	ab, _ := DerivePSKSecret(s, []PSK{a, b})
	ba, _ := DerivePSKSecret(s, []PSK{b, a})
	if ab.Equal(ba) {
		t.Error("PSK order does not matter")
	}
	// One PSK by hand: PSKLabel = id || index 0 || count 1.
	label := append(append([]byte(nil), a.ID...), 0, 0, 0, 1)
	input := s.ExpandWithLabel(s.Extract(make([]byte, 32), a.Secret), "derived psk", label, 32)
	want := s.Extract(input, make([]byte, 32))
	got, _ := DerivePSKSecret(s, []PSK{a})
	if !bytes.Equal(got.Bytes(), want) {
		t.Errorf("one PSK: got %x, want %x", got.Bytes(), want)
	}
	// External PSKs may have any length.
	if _, err := DerivePSKSecret(s, []PSK{{ID: a.ID, Secret: []byte{1}}}); err != nil {
		t.Errorf("short external PSK: %v", err)
	}
}

func TestWelcomeGroupInfo(t *testing.T) {
	for _, id := range ciphersuite.All() {
		s := suite(t, id)
		init, _ := NewInitSecret(s, seq(s.HashSize(), 1))
		j, _ := init.Joiner(nil, testGroupContext)
		m, _ := j.Intermediate(nil)
		w := m.Welcome()
		gi := []byte("an encoded GroupInfo")
		ct, err := w.SealGroupInfo(gi)
		if err != nil {
			t.Fatal(err)
		}
		key, nonce := w.KeyNonce()
		if pt, err := s.Open(key, nonce, nil, ct); err != nil || !bytes.Equal(pt, gi) {
			t.Errorf("%v: not AEAD under the welcome key and nonce with empty AAD: %v", id, err)
		}
		// A joiner that has only joiner_secret gets the same.
		j2, _ := NewJoinerSecret(s, j.Bytes())
		m2, _ := j2.Intermediate(ZeroPSKSecret(s))
		if pt, err := m2.Welcome().OpenGroupInfo(ct); err != nil || !bytes.Equal(pt, gi) {
			t.Errorf("%v: OpenGroupInfo: %v", id, err)
		}
		// A welcome_secret restored from its bytes seals the same.
		w2, err := NewWelcomeSecret(s, w.Bytes())
		if err != nil || !w2.Equal(w) {
			t.Fatalf("%v: NewWelcomeSecret: %v", id, err)
		}
		if ct2, err := w2.SealGroupInfo(gi); err != nil || !bytes.Equal(ct2, ct) {
			t.Errorf("%v: restored welcome_secret seals differently: %v", id, err)
		}
		if ct3, err := w2.AppendSealedGroupInfo([]byte("room"), gi); err != nil || string(ct3[:4]) != "room" || !bytes.Equal(ct3[4:], ct) {
			t.Errorf("%v: AppendSealedGroupInfo: %v", id, err)
		}
		if _, err := NewWelcomeSecret(s, w.Bytes()[1:]); err == nil {
			t.Errorf("%v: NewWelcomeSecret accepted a short secret", id)
		}
		ct[0] ^= 1
		if _, err := w.OpenGroupInfo(ct); !errors.Is(err, ciphersuite.ErrDecrypt) {
			t.Errorf("%v: tampered GroupInfo: %v", id, err)
		}
	}
}

func TestExternalInit(t *testing.T) {
	for _, id := range ciphersuite.All() {
		s := suite(t, id)
		es := epochFor(t, s)
		kp, err := es.ExternalKeyPair()
		if err != nil {
			t.Fatal(err)
		}
		kem, joinerInit, err := ExternalInit(s, kp.PublicKey())
		if err != nil {
			t.Fatal(err)
		}
		memberInit, err := kp.InitSecret(kem)
		if err != nil {
			t.Fatal(err)
		}
		if !joinerInit.Equal(memberInit) || len(memberInit.Bytes()) != s.HashSize() {
			t.Errorf("%v: joiner and member disagree on init_secret", id)
		}
		kem2, again, _ := ExternalInit(s, kp.PublicKey())
		if again.Equal(joinerInit) || bytes.Equal(kem, kem2) {
			t.Errorf("%v: external init is not fresh", id)
		}
		if _, err := kp.InitSecret(kem[:len(kem)-1]); err == nil {
			t.Errorf("%v: truncated kem_output accepted", id)
		}
		if _, _, err := ExternalInit(s, []byte{1, 2, 3}); !errors.Is(err, ciphersuite.ErrInvalidKey) {
			t.Errorf("%v: bad external_pub: %v", id, err)
		}
		kp.Erase()
		if _, err := kp.InitSecret(kem); !errors.Is(err, ErrDeleted) {
			t.Errorf("%v: after Erase: %v", id, err)
		}
	}
}

func TestDeleteEncryptionSecret(t *testing.T) {
	es := epochFor(t, suite(t, 1))
	if _, err := es.EncryptionSecret(); err != nil {
		t.Fatal(err)
	}
	es.DeleteEncryptionSecret()
	if b, err := es.EncryptionSecret(); !errors.Is(err, ErrDeleted) || b != nil {
		t.Errorf("after delete: %x %v", b, err)
	}
	if len(es.SenderDataSecret()) != 32 {
		t.Error("deleting encryption_secret deleted others")
	}
}

func TestAccessorsCopy(t *testing.T) {
	s := suite(t, 1)
	es := epochFor(t, s)
	clear(es.SenderDataSecret())
	clear(es.InitSecret().v.b)
	if bytes.Equal(es.SenderDataSecret(), make([]byte, 32)) || bytes.Equal(es.InitSecret().Bytes(), make([]byte, 32)) {
		t.Error("accessor returned internal storage")
	}
	in := seq(32, 1)
	init, _ := NewInitSecret(s, in)
	clear(in)
	if bytes.Equal(init.Bytes(), in) {
		t.Error("NewInitSecret kept the caller's slice")
	}
}

func TestEqual(t *testing.T) {
	s := suite(t, 1)
	a, _ := NewInitSecret(s, seq(32, 1))
	b, _ := NewInitSecret(s, seq(32, 1))
	c, _ := NewInitSecret(s, seq(32, 2))
	d, _ := NewInitSecret(suite(t, 3), seq(32, 1))
	if !a.Equal(b) || a.Equal(c) || a.Equal(d) {
		t.Error("InitSecret.Equal")
	}
	e1, e2 := epochFor(t, s), epochFor(t, s)
	if !e1.Equal(e2) {
		t.Error("same schedule, different EpochSecrets")
	}
	e2.DeleteEncryptionSecret()
	if e1.Equal(e2) {
		t.Error("EpochSecrets equal after one deleted encryption_secret")
	}
	if epochFor(t, suite(t, 3)).Equal(e1) {
		t.Error("EpochSecrets of different suites equal")
	}
}

func TestRedaction(t *testing.T) {
	s := suite(t, 1)
	init, _ := NewInitSecret(s, seq(32, 0x41)) // printable bytes "ABC..."
	j, _ := init.Joiner(nil, testGroupContext)
	m, _ := j.Intermediate(nil)
	w := m.Welcome()
	es, _ := m.Epoch(testGroupContext)
	kp, _ := es.ExternalKeyPair()
	psk, _ := NewPSKSecret(s, seq(32, 0x61))
	p := PSK{ID: []byte{1}, Secret: seq(32, 0x61)}
	enc, _ := es.EncryptionSecret()
	secrets := [][]byte{init.Bytes(), j.Bytes(), w.Bytes(), enc, es.SenderDataSecret(), es.InitSecret().Bytes(), psk.Bytes(), kp.priv, m.v.b}
	values := []any{init, *init, j, *j, m, *m, w, *w, es, *es, kp, *kp, psk, *psk, p, &p, []any{es}, struct{ X *EpochSecrets }{es}}
	for _, f := range []string{"%v", "%+v", "%#v", "%s", "%x", "%X", "%q", "%d"} {
		for _, v := range values {
			out := fmt.Sprintf(f, v)
			for _, sec := range secrets {
				for _, enc := range []string{hex.EncodeToString(sec), strings.ToUpper(hex.EncodeToString(sec)), string(sec[:8]), fmt.Sprint(sec[:3])[1:8]} {
					if strings.Contains(out, enc) {
						t.Errorf("%s of %T leaks a secret: %s", f, v, out)
					}
				}
			}
		}
	}
	if got := fmt.Sprint(init); got != "keyschedule.InitSecret{REDACTED}" {
		t.Errorf("InitSecret prints %q", got)
	}
	if !strings.Contains(fmt.Sprint(kp), hex.EncodeToString(kp.PublicKey())) {
		t.Error("ExternalKeyPair should still show its public key")
	}
}

func TestGenerateInitSecret(t *testing.T) {
	s := suite(t, 5)
	a, err := GenerateInitSecret(s, bytes.NewReader(seq(64, 7)))
	if err != nil || !bytes.Equal(a.Bytes(), seq(64, 7)) {
		t.Errorf("GenerateInitSecret: %v", err)
	}
	if _, err := GenerateInitSecret(s, bytes.NewReader(seq(63, 7))); err == nil {
		t.Error("short random source accepted")
	}
}

// TestTranscriptHashVectors checks both functions against
// transcript-hashes.json. The ConfirmedTranscriptHashInput is the
// AuthenticatedContent without its last field, confirmation_tag<V>.
func TestTranscriptHashVectors(t *testing.T) {
	var vs []struct {
		CipherSuite     ciphersuite.ID `json:"cipher_suite"`
		ConfirmationKey vectors.Hex    `json:"confirmation_key"`
		Content         vectors.Hex    `json:"authenticated_content"`
		InterimBefore   vectors.Hex    `json:"interim_transcript_hash_before"`
		ConfirmedAfter  vectors.Hex    `json:"confirmed_transcript_hash_after"`
		InterimAfter    vectors.Hex    `json:"interim_transcript_hash_after"`
	}
	readVectors(t, "transcript-hashes.json", &vs)
	if len(vs) == 0 {
		t.Fatal("no vectors")
	}
	for _, v := range vs {
		s := suite(t, v.CipherSuite)
		header := wire.AppendVarint(nil, uint64(s.HashSize()))
		split := len(v.Content) - len(header) - s.HashSize()
		if split < 0 || !bytes.Equal(v.Content[split:split+len(header)], header) {
			t.Fatalf("suite %d: content does not end in an Nh-byte confirmation_tag", v.CipherSuite)
		}
		input, tag := v.Content[:split], v.Content[split+len(header):]
		confirmed := ConfirmedTranscriptHash(s, v.InterimBefore, input)
		if !bytes.Equal(confirmed, v.ConfirmedAfter) {
			t.Errorf("suite %d: confirmed: got %x, want %x", v.CipherSuite, confirmed, v.ConfirmedAfter)
		}
		if !bytes.Equal(s.MAC(v.ConfirmationKey, v.ConfirmedAfter), tag) {
			t.Errorf("suite %d: confirmation_tag is not MAC(confirmation_key, confirmed)", v.CipherSuite)
		}
		if got := InterimTranscriptHash(s, v.ConfirmedAfter, tag); !bytes.Equal(got, v.InterimAfter) {
			t.Errorf("suite %d: interim: got %x, want %x", v.CipherSuite, got, v.InterimAfter)
		}
	}
}

func TestTranscriptByHand(t *testing.T) {
	s := suite(t, 1)
	c := ConfirmedTranscriptHash(s, nil, []byte("input"))
	if want := sha256.Sum256([]byte("input")); !bytes.Equal(c, want[:]) {
		t.Error("first confirmed hash must hash the input alone")
	}
	i := InterimTranscriptHash(s, []byte("conf"), []byte("tag"))
	if want := sha256.Sum256([]byte("conf\x03tag")); !bytes.Equal(i, want[:]) {
		t.Error("interim hash must length-prefix the tag")
	}
}
