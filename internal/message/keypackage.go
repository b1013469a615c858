package message

import (
	"crypto"
	"fmt"

	"github.com/mlskit/mls/ciphersuite"
	"github.com/mlskit/mls/internal/wire"
)

// encodeTBS appends KeyPackageTBS: every KeyPackage field but the
// signature (RFC 9420, Section 10).
func (kp *KeyPackage) encodeTBS(e *wire.Encoder) {
	e.U16(uint16(kp.Version))
	e.U16(uint16(kp.CipherSuite))
	e.Opaque(kp.InitKey)
	kp.LeafNode.Encode(e)
	encodeExtensions(e, kp.Extensions)
}

// Encode appends the KeyPackage (RFC 9420, Section 10).
func (kp *KeyPackage) Encode(e *wire.Encoder) {
	kp.encodeTBS(e)
	e.Opaque(kp.Signature)
}

// Decode reads a KeyPackage (RFC 9420, Section 10). Version, cipher suite
// and leaf node source are checked by KeyPackage validation (Section
// 10.1), not here.
func (kp *KeyPackage) Decode(d *wire.Decoder) {
	defer d.Struct(d.Struct("KeyPackage"))
	*kp = KeyPackage{}
	kp.Version = ProtocolVersion(d.U16("version"))
	kp.CipherSuite = ciphersuite.ID(d.U16("cipher_suite"))
	kp.InitKey = d.Opaque("init_key")
	kp.LeafNode.Decode(d)
	kp.Extensions = decodeExtensions(d, "extensions")
	kp.Signature = d.Opaque("signature")
}

func (kp *KeyPackage) check() error {
	if err := kp.LeafNode.check(); err != nil {
		return err
	}
	return CheckExtensions(kp.Extensions)
}

// TBS returns the encoded KeyPackageTBS (RFC 9420, Section 10).
func (kp *KeyPackage) TBS() ([]byte, error) {
	if err := kp.check(); err != nil {
		return nil, err
	}
	e := wire.NewEncoder(nil)
	kp.encodeTBS(e)
	return e.Bytes()
}

// Sign sets kp.Signature to SignWithLabel(signer, "KeyPackageTBS",
// KeyPackageTBS) (RFC 9420, Section 10). The leaf node must already be
// signed, since its signature is part of KeyPackageTBS. s should be the
// suite named by kp.CipherSuite.
func (kp *KeyPackage) Sign(s *ciphersuite.Suite, signer crypto.Signer) error {
	tbs, err := kp.TBS()
	if err != nil {
		return err
	}
	sig, err := s.SignWithLabel(signer, labelKeyPackageTBS, tbs)
	if err != nil {
		return fmt.Errorf("mls: signing KeyPackage: %w", err)
	}
	kp.Signature = sig
	return nil
}

// VerifySignature checks kp.Signature over KeyPackageTBS with the leaf
// node's signature key (RFC 9420, Section 10.1). It does not check the leaf
// node's own signature; see LeafNode.VerifySignature.
func (kp *KeyPackage) VerifySignature(s *ciphersuite.Suite) error {
	tbs, err := kp.TBS()
	if err != nil {
		return err
	}
	if err := s.VerifyWithLabel(kp.LeafNode.SignatureKey, labelKeyPackageTBS, tbs, kp.Signature); err != nil {
		return fmt.Errorf("mls: KeyPackage signature: %w", err)
	}
	return nil
}

// Ref returns the KeyPackageRef of kp: RefHash("MLS 1.0 KeyPackage
// Reference", encoded KeyPackage) (RFC 9420, Section 5.2).
func (kp *KeyPackage) Ref(s *ciphersuite.Suite) ([]byte, error) {
	b, err := kp.Marshal()
	if err != nil {
		return nil, err
	}
	return s.KeyPackageRef(b), nil
}

// Marshal returns the encoding of the KeyPackage, after checking that it
// can be encoded faithfully (ErrInconsistent otherwise).
func (kp *KeyPackage) Marshal() ([]byte, error) {
	if err := kp.check(); err != nil {
		return nil, err
	}
	return Marshal(kp)
}
