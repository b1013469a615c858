package message

// Top-level decoding. Each function decodes all of b, rejecting trailing
// bytes (wire.ErrTrailingData), and returns a value that shares no memory
// with b.

// decodePointer is a *T that can decode itself.
type decodePointer[T any] interface {
	*T
	Decodable
}

func unmarshalNew[T any, P decodePointer[T]](b []byte) (*T, error) {
	v := new(T)
	if err := Unmarshal(b, P(v)); err != nil {
		return nil, err
	}
	return v, nil
}

// UnmarshalMLSMessage decodes an MLSMessage (RFC 9420, Section 6).
func UnmarshalMLSMessage(b []byte) (*MLSMessage, error) { return unmarshalNew[MLSMessage](b) }

// UnmarshalKeyPackage decodes a bare KeyPackage (RFC 9420, Section 10), as
// found in an Add proposal; a KeyPackage sent on its own is wrapped in an
// MLSMessage.
func UnmarshalKeyPackage(b []byte) (*KeyPackage, error) { return unmarshalNew[KeyPackage](b) }

// UnmarshalWelcome decodes a bare Welcome (RFC 9420, Section 12.4.3.1).
func UnmarshalWelcome(b []byte) (*Welcome, error) { return unmarshalNew[Welcome](b) }

// UnmarshalGroupInfo decodes a bare GroupInfo (RFC 9420, Section 12.4.3),
// such as the plaintext of Welcome.encrypted_group_info.
func UnmarshalGroupInfo(b []byte) (*GroupInfo, error) { return unmarshalNew[GroupInfo](b) }

// UnmarshalGroupSecrets decodes a GroupSecrets (RFC 9420, Section
// 12.4.3.1), the plaintext of EncryptedGroupSecrets.
func UnmarshalGroupSecrets(b []byte) (*GroupSecrets, error) { return unmarshalNew[GroupSecrets](b) }

// UnmarshalRatchetTree decodes optional<Node> ratchet_tree<V> (RFC 9420,
// Section 12.4.3.3).
func UnmarshalRatchetTree(b []byte) (RatchetTree, error) {
	var t RatchetTree
	if err := Unmarshal(b, &t); err != nil {
		return nil, err
	}
	return t, nil
}
