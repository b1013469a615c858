package keyschedule

import (
	"encoding"
	"fmt"

	"github.com/mlskit/mls/ciphersuite"
	"github.com/mlskit/mls/internal/wire"
)

// epochSecretsVersion is the first octet of the EpochSecrets encoding.
const epochSecretsVersion = 1

var epochFieldNames = []string{"sender_data_secret", "encryption_secret", "exporter_secret", "external_secret", "confirmation_key", "membership_key", "resumption_psk", "epoch_authenticator", "init_secret"}

// MarshalBinary encodes the epoch secrets for storage, in the TLS
// presentation language of RFC 9420, Section 2.1:
//
//	struct {
//	    uint8 version = 1;
//	    CipherSuite cipher_suite;
//	    opaque sender_data_secret<V>;
//	    opaque encryption_secret<V>;  /* empty once deleted */
//	    opaque exporter_secret<V>;
//	    opaque external_secret<V>;
//	    opaque confirmation_key<V>;
//	    opaque membership_key<V>;
//	    opaque resumption_psk<V>;
//	    opaque epoch_authenticator<V>;
//	    opaque init_secret<V>;
//	} EpochSecretsState;
//
// The result holds every secret of the epoch; store it accordingly.
func (e *EpochSecrets) MarshalBinary() ([]byte, error) {
	enc := wire.NewEncoder(nil)
	enc.U8(epochSecretsVersion)
	enc.U16(uint16(e.s.ID()))
	for _, f := range e.fields() {
		enc.Opaque(*f)
	}
	return enc.Bytes()
}

// UnmarshalBinary replaces e with secrets encoded by MarshalBinary. Every
// secret must be KDF.Nh bytes, except encryption_secret, which may be
// empty (deleted). On error e is unchanged.
func (e *EpochSecrets) UnmarshalBinary(b []byte) error {
	d := wire.NewDecoder(b)
	d.Struct("EpochSecretsState")
	if v := d.U8("version"); d.Err() == nil && v != epochSecretsVersion {
		d.Failf("version", "unknown version %d", v)
	}
	id := ciphersuite.ID(d.U16("cipher_suite"))
	if err := d.Err(); err != nil {
		return fmt.Errorf("keyschedule: EpochSecrets: %w", err)
	}
	s, err := ciphersuite.Lookup(id)
	if err != nil {
		return fmt.Errorf("keyschedule: EpochSecrets: %w", err)
	}
	n := &EpochSecrets{s: s}
	for i, f := range n.fields() {
		name := epochFieldNames[i]
		v := d.Opaque(name)
		if d.Err() != nil {
			break
		}
		if len(v) == 0 && name == "encryption_secret" {
			continue // deleted; stays nil
		}
		if len(v) != s.HashSize() {
			d.Fail(name, &LengthError{What: name, Got: len(v), Want: s.HashSize()})
			break
		}
		*f = v
	}
	if err := d.Finish(); err != nil {
		return fmt.Errorf("keyschedule: EpochSecrets: %w", err)
	}
	*e = *n
	return nil
}

var (
	_ encoding.BinaryMarshaler   = (*EpochSecrets)(nil)
	_ encoding.BinaryUnmarshaler = (*EpochSecrets)(nil)
	_ fmt.Formatter              = EpochSecrets{}
	_ fmt.Formatter              = InitSecret{}
	_ fmt.Formatter              = JoinerSecret{}
	_ fmt.Formatter              = IntermediateSecret{}
	_ fmt.Formatter              = WelcomeSecret{}
	_ fmt.Formatter              = PSKSecret{}
	_ fmt.Formatter              = PSK{}
	_ fmt.Formatter              = ExternalKeyPair{}
)
