package mls

import (
	"fmt"

	"github.com/mlskit/mls/internal/message"
)

// Encodings of the objects clients hand each other outside a group's
// message stream. RFC 9420, Section 6 wraps KeyPackage, GroupInfo and
// Welcome in an MLSMessage (version, wire_format, body); some transports
// carry the body alone. Each type here has MarshalBinary for the bare
// structure and MarshalMessage for the MLSMessage, and each Parse function
// accepts both: it first reads the input as an MLSMessage of the right
// wire format and, failing that, as the bare structure, so either form
// decodes with no trailing bytes. A ratchet tree has no MLSMessage form;
// ParseRatchetTree accepts the bare tree or the ratchet_tree extension
// (Section 12.4.3.3) that carries it.

// parseEither decodes b as an MLSMessage of wire format wf, whose body
// pick returns, or as the bare structure.
func parseEither[T any, PT interface {
	*T
	message.Decodable
}](b []byte, wf message.WireFormat, what string, pick func(*message.MLSMessage) *T) (*T, error) {
	if m, err := message.UnmarshalMLSMessage(b); err == nil && m.WireFormat == wf {
		if v := pick(m); v != nil {
			return v, nil
		}
	}
	v := new(T)
	if err := message.Unmarshal(b, PT(v)); err != nil {
		return nil, fmt.Errorf("%w: neither a %s nor an MLSMessage carrying one: %w", ErrMalformed, what, err)
	}
	return v, nil
}

// MarshalMessage returns the key package wrapped in an MLSMessage (wire
// format mls_key_package, RFC 9420, Section 6), the form in which it is
// usually published. MarshalBinary returns the bare structure.
func (k *KeyPackage) MarshalMessage() ([]byte, error) { return k.Message().MarshalBinary() }

// Message returns the key package as an MLSMessage.
func (k *KeyPackage) Message() *Message {
	kp := k.kp
	return &Message{m: message.MLSMessage{Version: message.MLS10, WireFormat: message.WireFormatKeyPackage, KeyPackage: &kp}}
}

// GroupInfo is a GroupInfo (RFC 9420, Section 12.4.3): the signed
// description of an epoch that external joiners start from. ParseGroupInfo
// checks structure only; JoinExternal verifies the signature against the
// ratchet tree.
type GroupInfo struct {
	gi message.GroupInfo
}

// ParseGroupInfo decodes a GroupInfo, bare or in an MLSMessage.
func ParseGroupInfo(b []byte) (*GroupInfo, error) {
	gi, err := parseEither(b, message.WireFormatGroupInfo, "GroupInfo", func(m *message.MLSMessage) *message.GroupInfo { return m.GroupInfo })
	if err != nil {
		return nil, err
	}
	return &GroupInfo{gi: *gi}, nil
}

// GroupInfo returns the GroupInfo a GroupInfo message carries.
func (m *Message) GroupInfo() (*GroupInfo, error) {
	if m == nil || m.m.GroupInfo == nil {
		return nil, fmt.Errorf("%w: not a GroupInfo message", ErrInvalidArgument)
	}
	return &GroupInfo{gi: *m.m.GroupInfo}, nil
}

// MarshalBinary returns the bare GroupInfo structure.
func (g *GroupInfo) MarshalBinary() ([]byte, error) { return message.Marshal(&g.gi) }

// MarshalMessage returns the GroupInfo wrapped in an MLSMessage (wire
// format mls_group_info).
func (g *GroupInfo) MarshalMessage() ([]byte, error) { return g.Message().MarshalBinary() }

// Message returns the GroupInfo as an MLSMessage, for JoinExternal and
// NewJoinProposal.
func (g *GroupInfo) Message() *Message {
	gi := g.gi
	return wrapGroupInfo(&gi)
}

// GroupID returns the group's ID.
func (g *GroupInfo) GroupID() []byte { return clone(g.gi.GroupContext.GroupID) }

// Epoch returns the epoch the GroupInfo describes.
func (g *GroupInfo) Epoch() uint64 { return g.gi.GroupContext.Epoch }

// CipherSuite returns the group's cipher suite.
func (g *GroupInfo) CipherSuite() CipherSuite { return g.gi.GroupContext.CipherSuite }

// Welcome is a Welcome message (RFC 9420, Section 12.4.3.1): the group
// secrets for new members, each encrypted to one key package, and the
// encrypted GroupInfo.
type Welcome struct {
	w message.Welcome
}

// ParseWelcome decodes a Welcome, bare or in an MLSMessage. It checks
// structure only; StageWelcome decrypts and verifies it. A Welcome for no
// one (no encrypted group secrets) is rejected: besides being useless, a
// bare one of cipher suite 1 could not be told from the start of an
// MLSMessage (both begin 0x0001 0x00).
func ParseWelcome(b []byte) (*Welcome, error) {
	w, err := parseEither(b, message.WireFormatWelcome, "Welcome", func(m *message.MLSMessage) *message.Welcome {
		if len(m.Welcome.Secrets) == 0 {
			return nil
		}
		return m.Welcome
	})
	if err != nil {
		return nil, err
	}
	if len(w.Secrets) == 0 {
		return nil, fmt.Errorf("%w: Welcome without encrypted group secrets", ErrMalformed)
	}
	return &Welcome{w: *w}, nil
}

// Welcome returns the Welcome a Welcome message carries.
func (m *Message) Welcome() (*Welcome, error) {
	if m == nil || m.m.Welcome == nil {
		return nil, fmt.Errorf("%w: not a Welcome message", ErrInvalidArgument)
	}
	return &Welcome{w: *m.m.Welcome}, nil
}

// MarshalBinary returns the bare Welcome structure.
func (w *Welcome) MarshalBinary() ([]byte, error) { return message.Marshal(&w.w) }

// MarshalMessage returns the Welcome wrapped in an MLSMessage (wire format
// mls_welcome).
func (w *Welcome) MarshalMessage() ([]byte, error) { return w.Message().MarshalBinary() }

// Message returns the Welcome as an MLSMessage, for StageWelcome.
func (w *Welcome) Message() *Message {
	c := w.w
	return wrapWelcome(&c)
}

// CipherSuite returns the group's cipher suite.
func (w *Welcome) CipherSuite() CipherSuite { return w.w.CipherSuite }

// KeyPackageRefs returns the references of the key packages the Welcome
// is addressed to (new_member, RFC 9420, Section 12.4.3.1), in order.
func (w *Welcome) KeyPackageRefs() [][]byte {
	out := make([][]byte, len(w.w.Secrets))
	for i := range w.w.Secrets {
		out[i] = clone(w.w.Secrets[i].NewMember)
	}
	return out
}

// RatchetTree is a public ratchet tree (RFC 9420, Section 12.4.3.3), as
// Group.ExportRatchetTree returns it and WelcomeOptions.RatchetTree and
// ExternalJoinOptions.RatchetTree take it. ParseRatchetTree checks its
// structure only; a joiner checks it against the GroupInfo's tree hash.
type RatchetTree struct {
	raw []byte // the bare encoding, re-encoded from the decoded tree
}

// ParseRatchetTree decodes a ratchet tree: the bare optional<Node>
// ratchet_tree<V> vector, or a ratchet_tree Extension (extension_type 2
// followed by the vector as extension_data).
//
// A tree of more than DefaultMaxTreeLeaves leaves is refused before it is
// decoded: the count of its nodes, blank ones included, is bounded first
// (a blank node is one input byte, so without the bound a few megabytes of
// blank nodes would cost hundreds of megabytes of node slots).
func ParseRatchetTree(b []byte) (*RatchetTree, error) {
	const maxNodes = 2*DefaultMaxTreeLeaves - 1
	var rt message.RatchetTree
	if _, bareErr := message.UnmarshalSparseRatchetTree(b, maxNodes); bareErr == nil {
		if err := message.Unmarshal(b, &rt); err != nil {
			return nil, fmt.Errorf("%w: ratchet tree: %w", ErrMalformed, err)
		}
	} else {
		var ext message.Extension
		if err := message.Unmarshal(b, &ext); err != nil || ext.Type != message.ExtensionRatchetTree {
			return nil, fmt.Errorf("%w: neither a ratchet tree (at most %d leaves) nor a ratchet_tree extension: %w", ErrMalformed, DefaultMaxTreeLeaves, bareErr)
		}
		if _, err := message.UnmarshalSparseRatchetTree(ext.Data, maxNodes); err != nil {
			return nil, fmt.Errorf("%w: ratchet_tree extension (at most %d leaves): %w", ErrMalformed, DefaultMaxTreeLeaves, err)
		}
		if err := message.Unmarshal(ext.Data, &rt); err != nil {
			return nil, fmt.Errorf("%w: ratchet_tree extension: %w", ErrMalformed, err)
		}
	}
	// RFC 9420, Section 12.4.3.3: the last node is non-blank (so the tree
	// is not empty, and a bare tree never starts with the 0x00 of an
	// extension's type).
	if len(rt) == 0 || rt[len(rt)-1] == nil {
		return nil, fmt.Errorf("%w: ratchet tree is empty or ends with a blank node (RFC 9420, Section 12.4.3.3)", ErrMalformed)
	}
	raw, err := message.Marshal(&rt)
	if err != nil {
		return nil, fmt.Errorf("%w: ratchet tree: %w", ErrMalformed, err)
	}
	return &RatchetTree{raw: raw}, nil
}

// MarshalBinary returns the bare ratchet tree, the form WelcomeOptions
// and ExternalJoinOptions take.
func (t *RatchetTree) MarshalBinary() ([]byte, error) { return clone(t.raw), nil }

// MarshalExtension returns the ratchet tree as a ratchet_tree Extension
// structure (RFC 9420, Section 12.4.3.3): extension type and data.
func (t *RatchetTree) MarshalExtension() ([]byte, error) {
	return message.Marshal(&message.Extension{Type: message.ExtensionRatchetTree, Data: t.raw})
}

// Extension returns the ratchet tree as an Extension value.
func (t *RatchetTree) Extension() Extension {
	return Extension{Type: uint16(message.ExtensionRatchetTree), Data: clone(t.raw)}
}
