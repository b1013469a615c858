package conformance

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/mlskit/mls/internal/message"
)

func init() { register("messages.json", checkMessages) }

// messagesVector is one entry of messages.json (vector README,
// "Messages"): serialized structures that must decode as the named type
// and re-encode to the same bytes.
type messagesVector struct {
	MLSWelcome    hx `json:"mls_welcome"`
	MLSGroupInfo  hx `json:"mls_group_info"`
	MLSKeyPackage hx `json:"mls_key_package"`
	RatchetTree   hx `json:"ratchet_tree"`
	GroupSecrets  hx `json:"group_secrets"`

	AddProposal                    hx `json:"add_proposal"`
	UpdateProposal                 hx `json:"update_proposal"`
	RemoveProposal                 hx `json:"remove_proposal"`
	PreSharedKeyProposal           hx `json:"pre_shared_key_proposal"`
	ReInitProposal                 hx `json:"re_init_proposal"`
	ExternalInitProposal           hx `json:"external_init_proposal"`
	GroupContextExtensionsProposal hx `json:"group_context_extensions_proposal"`

	Commit hx `json:"commit"`

	PublicMessageApplication hx `json:"public_message_application"`
	PublicMessageProposal    hx `json:"public_message_proposal"`
	PublicMessageCommit      hx `json:"public_message_commit"`
	PrivateMessage           hx `json:"private_message"`
}

// messageField is one field of a messages vector: its bytes, a fresh value
// of the type the README names, and an optional check of what the README
// says the value must be (the wire format of an MLSMessage, the content
// type of a PublicMessage).
type messageField struct {
	name string
	b    []byte
	v    interface {
		message.Encodable
		message.Decodable
	}
	want func() error
}

// mlsMessageIs checks m's wire format and, for public messages, the
// content type.
func mlsMessageIs(m *message.MLSMessage, wf message.WireFormat, ct message.ContentType) func() error {
	return func() error {
		if m.WireFormat != wf {
			return fmt.Errorf("wire_format %d, want %d", m.WireFormat, wf)
		}
		if wf == message.WireFormatPublicMessage && m.PublicMessage.Content.ContentType != ct {
			return fmt.Errorf("content_type %d, want %d", m.PublicMessage.Content.ContentType, ct)
		}
		return nil
	}
}

func (v *messagesVector) fields() []messageField {
	msg := func(name string, b []byte, wf message.WireFormat, ct message.ContentType) messageField {
		m := new(message.MLSMessage)
		return messageField{name, b, m, mlsMessageIs(m, wf, ct)}
	}
	return []messageField{
		msg("mls_welcome", v.MLSWelcome, message.WireFormatWelcome, 0),
		msg("mls_group_info", v.MLSGroupInfo, message.WireFormatGroupInfo, 0),
		msg("mls_key_package", v.MLSKeyPackage, message.WireFormatKeyPackage, 0),
		{"ratchet_tree", v.RatchetTree, new(message.RatchetTree), nil},
		{"group_secrets", v.GroupSecrets, new(message.GroupSecrets), nil},
		{"add_proposal", v.AddProposal, new(message.AddProposal), nil},
		{"update_proposal", v.UpdateProposal, new(message.UpdateProposal), nil},
		{"remove_proposal", v.RemoveProposal, new(message.RemoveProposal), nil},
		{"pre_shared_key_proposal", v.PreSharedKeyProposal, new(message.PreSharedKeyProposal), nil},
		{"re_init_proposal", v.ReInitProposal, new(message.ReInitProposal), nil},
		{"external_init_proposal", v.ExternalInitProposal, new(message.ExternalInitProposal), nil},
		{"group_context_extensions_proposal", v.GroupContextExtensionsProposal, new(message.GroupContextExtensionsProposal), nil},
		{"commit", v.Commit, new(message.Commit), nil},
		msg("public_message_application", v.PublicMessageApplication, message.WireFormatPublicMessage, message.ContentApplication),
		msg("public_message_proposal", v.PublicMessageProposal, message.WireFormatPublicMessage, message.ContentProposal),
		msg("public_message_commit", v.PublicMessageCommit, message.WireFormatPublicMessage, message.ContentCommit),
		msg("private_message", v.PrivateMessage, message.WireFormatPrivateMessage, 0),
	}
}

// checkMessages decodes every field of every vector as the structure the
// README names and checks that it re-encodes to the same bytes. One case
// per vector; a failure lists every field that failed.
func checkMessages(raw []byte, r *Report) error {
	var vs []messagesVector
	if err := json.Unmarshal(raw, &vs); err != nil {
		return err
	}
	for i := range vs {
		var errs []error
		for _, f := range vs[i].fields() {
			if err := checkMessageField(f); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", f.name, err))
			}
		}
		r.Check(fmt.Sprintf("%d", i), errors.Join(errs...))
	}
	return nil
}

func checkMessageField(f messageField) error {
	if f.b == nil {
		return errors.New("missing from the vector")
	}
	if err := message.Unmarshal(f.b, f.v); err != nil {
		return err
	}
	if f.want != nil {
		if err := f.want(); err != nil {
			return err
		}
	}
	out, err := message.Marshal(f.v)
	if err != nil {
		return err
	}
	if !bytes.Equal(out, f.b) {
		return mismatch("re-encoding", out, f.b)
	}
	return nil
}
