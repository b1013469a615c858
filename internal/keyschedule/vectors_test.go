package keyschedule

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"testing"

	"github.com/mlskit/mls/ciphersuite"
	"github.com/mlskit/mls/internal/vectors"
	"github.com/mlskit/mls/internal/wire"
)

func readVectors(t *testing.T, file string, v any) { readVectorsF(t, file, v) }

// readVectorsF reads an official vector file into v. Without the vector
// files it skips, except under CI.
func readVectorsF(t testing.TB, file string, v any) {
	t.Helper()
	dir, err := vectors.Dir()
	if err != nil {
		t.Fatal(err)
	}
	raw, err := vectors.Read(dir, file)
	if errors.Is(err, vectors.ErrNotFound) && os.Getenv("CI") != "true" {
		t.Skip(err)
	} else if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, v); err != nil {
		t.Fatal(err)
	}
}

type keyScheduleVector struct {
	CipherSuite       ciphersuite.ID `json:"cipher_suite"`
	GroupID           vectors.Hex    `json:"group_id"`
	InitialInitSecret vectors.Hex    `json:"initial_init_secret"`
	Epochs            []struct {
		TreeHash                vectors.Hex `json:"tree_hash"`
		CommitSecret            vectors.Hex `json:"commit_secret"`
		PSKSecret               vectors.Hex `json:"psk_secret"`
		ConfirmedTranscriptHash vectors.Hex `json:"confirmed_transcript_hash"`
		GroupContext            vectors.Hex `json:"group_context"`
		JoinerSecret            vectors.Hex `json:"joiner_secret"`
		WelcomeSecret           vectors.Hex `json:"welcome_secret"`
		InitSecret              vectors.Hex `json:"init_secret"`
		SenderDataSecret        vectors.Hex `json:"sender_data_secret"`
		EncryptionSecret        vectors.Hex `json:"encryption_secret"`
		ExporterSecret          vectors.Hex `json:"exporter_secret"`
		EpochAuthenticator      vectors.Hex `json:"epoch_authenticator"`
		ExternalSecret          vectors.Hex `json:"external_secret"`
		ConfirmationKey         vectors.Hex `json:"confirmation_key"`
		MembershipKey           vectors.Hex `json:"membership_key"`
		ResumptionPSK           vectors.Hex `json:"resumption_psk"`
		ExternalPub             vectors.Hex `json:"external_pub"`
		Exporter                struct {
			Label   string      `json:"label"`
			Context vectors.Hex `json:"context"`
			Length  int         `json:"length"`
			Secret  vectors.Hex `json:"secret"`
		} `json:"exporter"`
	} `json:"epochs"`
}

// TestKeyScheduleVectors runs key-schedule.json with the vector's own
// group_context bytes (the conformance checker also builds them from a
// message.GroupContext).
func TestKeyScheduleVectors(t *testing.T) {
	var vs []keyScheduleVector
	readVectors(t, "key-schedule.json", &vs)
	if len(vs) == 0 {
		t.Fatal("no vectors")
	}
	for _, v := range vs {
		s, err := ciphersuite.Lookup(v.CipherSuite)
		if err != nil {
			t.Fatal(err)
		}
		init, err := NewInitSecret(s, v.InitialInitSecret)
		if err != nil {
			t.Fatal(err)
		}
		for i, ep := range v.Epochs {
			check := func(field string, got, want []byte) {
				t.Helper()
				if !bytes.Equal(got, want) {
					t.Errorf("suite %d epoch %d %s: got %x, want %x", v.CipherSuite, i, field, got, want)
				}
			}
			joiner, err := init.Joiner(ep.CommitSecret, ep.GroupContext)
			if err != nil {
				t.Fatal(err)
			}
			check("joiner_secret", joiner.Bytes(), ep.JoinerSecret)
			psk, err := NewPSKSecret(s, ep.PSKSecret)
			if err != nil {
				t.Fatal(err)
			}
			mid, err := joiner.Intermediate(psk)
			if err != nil {
				t.Fatal(err)
			}
			check("welcome_secret", mid.Welcome().Bytes(), ep.WelcomeSecret)
			es, err := mid.Epoch(ep.GroupContext)
			if err != nil {
				t.Fatal(err)
			}
			enc, err := es.EncryptionSecret()
			if err != nil {
				t.Fatal(err)
			}
			check("init_secret", es.InitSecret().Bytes(), ep.InitSecret)
			check("sender_data_secret", es.SenderDataSecret(), ep.SenderDataSecret)
			check("encryption_secret", enc, ep.EncryptionSecret)
			check("exporter_secret", es.ExporterSecret(), ep.ExporterSecret)
			check("epoch_authenticator", es.EpochAuthenticator(), ep.EpochAuthenticator)
			check("external_secret", es.ExternalSecret(), ep.ExternalSecret)
			check("confirmation_key", es.ConfirmationKey(), ep.ConfirmationKey)
			check("membership_key", es.MembershipKey(), ep.MembershipKey)
			check("resumption_psk", es.ResumptionPSK(), ep.ResumptionPSK)
			kp, err := es.ExternalKeyPair()
			if err != nil {
				t.Fatal(err)
			}
			check("external_pub", kp.PublicKey(), ep.ExternalPub)
			out, err := es.Export(ep.Exporter.Label, ep.Exporter.Context, ep.Exporter.Length)
			if err != nil {
				t.Fatal(err)
			}
			check("exporter.secret", out, ep.Exporter.Secret)
			init = es.InitSecret()
		}
	}
}

func encodeExternalPSKID(id, nonce []byte) []byte {
	e := wire.NewEncoder(nil)
	e.U8(1) // external
	e.Opaque(id)
	e.Opaque(nonce)
	return e.MustBytes()
}

func TestPSKSecretVectors(t *testing.T) {
	var vs []struct {
		CipherSuite ciphersuite.ID `json:"cipher_suite"`
		PSKs        []struct {
			PSKID    vectors.Hex `json:"psk_id"`
			PSK      vectors.Hex `json:"psk"`
			PSKNonce vectors.Hex `json:"psk_nonce"`
		} `json:"psks"`
		PSKSecret vectors.Hex `json:"psk_secret"`
	}
	readVectors(t, "psk_secret.json", &vs)
	if len(vs) == 0 {
		t.Fatal("no vectors")
	}
	for i, v := range vs {
		s, err := ciphersuite.Lookup(v.CipherSuite)
		if err != nil {
			t.Fatal(err)
		}
		var psks []PSK
		for _, p := range v.PSKs {
			psks = append(psks, PSK{ID: encodeExternalPSKID(p.PSKID, p.PSKNonce), Secret: p.PSK})
		}
		got, err := DerivePSKSecret(s, psks)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got.Bytes(), v.PSKSecret) {
			t.Errorf("vector %d (suite %d, %d PSKs): got %x, want %x", i, v.CipherSuite, len(v.PSKs), got.Bytes(), v.PSKSecret)
		}
	}
}
