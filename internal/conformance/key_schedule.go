package conformance

import (
	"encoding/json"
	"fmt"

	"github.com/mlskit/mls/ciphersuite"
	"github.com/mlskit/mls/internal/keyschedule"
	"github.com/mlskit/mls/internal/message"
)

func init() { register("key-schedule.json", checkKeySchedule) }

type keyScheduleEpoch struct {
	TreeHash                hx `json:"tree_hash"`
	CommitSecret            hx `json:"commit_secret"`
	PSKSecret               hx `json:"psk_secret"`
	ConfirmedTranscriptHash hx `json:"confirmed_transcript_hash"`
	GroupContext            hx `json:"group_context"`
	JoinerSecret            hx `json:"joiner_secret"`
	WelcomeSecret           hx `json:"welcome_secret"`
	InitSecret              hx `json:"init_secret"`
	SenderDataSecret        hx `json:"sender_data_secret"`
	EncryptionSecret        hx `json:"encryption_secret"`
	ExporterSecret          hx `json:"exporter_secret"`
	EpochAuthenticator      hx `json:"epoch_authenticator"`
	ExternalSecret          hx `json:"external_secret"`
	ConfirmationKey         hx `json:"confirmation_key"`
	MembershipKey           hx `json:"membership_key"`
	ResumptionPSK           hx `json:"resumption_psk"`
	ExternalPub             hx `json:"external_pub"`
	Exporter                struct {
		Label   string `json:"label"`
		Context hx     `json:"context"`
		Length  int    `json:"length"`
		Secret  hx     `json:"secret"`
	} `json:"exporter"`
}

type keyScheduleVector struct {
	CipherSuite       uint16             `json:"cipher_suite"`
	GroupID           hx                 `json:"group_id"`
	InitialInitSecret hx                 `json:"initial_init_secret"`
	Epochs            []keyScheduleEpoch `json:"epochs"`
}

// checkKeySchedule runs the key schedule of RFC 9420, Section 8 through
// every epoch of every vector, starting from initial_init_secret and
// chaining each epoch's init_secret into the next, and checks every
// derived value, the GroupContext encoding, external_pub and the exporter.
func checkKeySchedule(raw []byte, r *Report) error {
	var vs []keyScheduleVector
	if err := json.Unmarshal(raw, &vs); err != nil {
		return err
	}
	for i := range vs {
		v := &vs[i]
		name := fmt.Sprintf("%d/suite=%d", i, v.CipherSuite)
		s, err := suiteFor(v.CipherSuite)
		if err != nil {
			r.Check(name, err)
			continue
		}
		init, err := keyschedule.NewInitSecret(s, v.InitialInitSecret)
		if err != nil {
			r.Check(name, fmt.Errorf("initial_init_secret: %w", err))
			continue
		}
		for n := range v.Epochs {
			next, err := checkKeyScheduleEpoch(s, v, n, init)
			r.Check(fmt.Sprintf("%s/epoch=%d", name, n), err)
			if err != nil {
				// Continue the chain from the vector's value, so one
				// failure does not hide the state of later epochs.
				if next, err = keyschedule.NewInitSecret(s, v.Epochs[n].InitSecret); err != nil {
					break
				}
			}
			init = next
		}
	}
	return nil
}

// checkKeyScheduleEpoch checks epoch n and returns its init_secret.
func checkKeyScheduleEpoch(s *ciphersuite.Suite, v *keyScheduleVector, n int, init *keyschedule.InitSecret) (*keyschedule.InitSecret, error) {
	ep := &v.Epochs[n]
	gc := &message.GroupContext{
		Version:                 message.MLS10,
		CipherSuite:             s.ID(),
		GroupID:                 v.GroupID,
		Epoch:                   uint64(n),
		TreeHash:                ep.TreeHash,
		ConfirmedTranscriptHash: ep.ConfirmedTranscriptHash,
	}
	gcBytes, err := gc.Marshal()
	if err != nil {
		return nil, fmt.Errorf("group_context: %w", err)
	}
	if err := eq("group_context", gcBytes, ep.GroupContext); err != nil {
		return nil, err
	}
	joiner, err := init.Joiner(ep.CommitSecret, gcBytes)
	if err != nil {
		return nil, err
	}
	psk, err := keyschedule.NewPSKSecret(s, ep.PSKSecret)
	if err != nil {
		return nil, fmt.Errorf("psk_secret: %w", err)
	}
	mid, err := joiner.Intermediate(psk)
	if err != nil {
		return nil, err
	}
	es, err := mid.Epoch(gcBytes)
	if err != nil {
		return nil, err
	}
	enc, err := es.EncryptionSecret()
	if err != nil {
		return nil, err
	}
	next := es.InitSecret()
	for _, c := range []struct {
		field     string
		got, want []byte
	}{
		{"joiner_secret", joiner.Bytes(), ep.JoinerSecret},
		{"welcome_secret", mid.Welcome().Bytes(), ep.WelcomeSecret},
		{"init_secret", next.Bytes(), ep.InitSecret},
		{"sender_data_secret", es.SenderDataSecret(), ep.SenderDataSecret},
		{"encryption_secret", enc, ep.EncryptionSecret},
		{"exporter_secret", es.ExporterSecret(), ep.ExporterSecret},
		{"epoch_authenticator", es.EpochAuthenticator(), ep.EpochAuthenticator},
		{"external_secret", es.ExternalSecret(), ep.ExternalSecret},
		{"confirmation_key", es.ConfirmationKey(), ep.ConfirmationKey},
		{"membership_key", es.MembershipKey(), ep.MembershipKey},
		{"resumption_psk", es.ResumptionPSK(), ep.ResumptionPSK},
	} {
		if err := eq(c.field, c.got, c.want); err != nil {
			return nil, err
		}
	}
	kp, err := es.ExternalKeyPair()
	if err != nil {
		return nil, fmt.Errorf("external key pair: %w", err)
	}
	if err := eq("external_pub", kp.PublicKey(), ep.ExternalPub); err != nil {
		return nil, err
	}
	x := ep.Exporter
	out, err := es.Export(x.Label, x.Context, x.Length)
	if err != nil {
		return nil, fmt.Errorf("exporter: %w", err)
	}
	if err := eq("exporter.secret", out, x.Secret); err != nil {
		return nil, err
	}
	return next, nil
}
