package keyschedule

import (
	"encoding"
	"fmt"

	"github.com/mlskit/mls/ciphersuite"
	"github.com/mlskit/mls/internal/wire"
)

// epochSecretsVersion is the first octet of the EpochSecrets encoding.
// Version 2 adds application_export_secret; version 1 is still read
// (without it).
const epochSecretsVersion = 2

var epochFieldNames = []string{"sender_data_secret", "encryption_secret", "exporter_secret", "external_secret", "confirmation_key", "membership_key", "resumption_psk", "epoch_authenticator", "init_secret", "application_export_secret"}

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
//	    opaque application_export_secret<V>;  /* version 2 only */
//	} EpochSecretsState;
//
// The result holds every secret of the epoch; store it accordingly.
func (e *EpochSecrets) MarshalBinary() ([]byte, error) {
	enc := wire.NewEncoder(nil)
	fields := e.fields()
	if e.appExport == nil {
		// Secrets read from version 1 are written back as they came.
		enc.U8(1)
		fields = fields[:len(fields)-1]
	} else {
		enc.U8(epochSecretsVersion)
	}
	enc.U16(uint16(e.s.ID()))
	for _, f := range fields {
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
	v := d.U8("version")
	if d.Err() == nil && v != 1 && v != epochSecretsVersion {
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
	fields := n.fields()
	if v == 1 {
		fields = fields[:len(fields)-1] // no application_export_secret
	}
	for i, f := range fields {
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
