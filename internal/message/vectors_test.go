package message

import (
	"encoding/json"
	"errors"
	"os"
	"testing"

	"github.com/mlskit/mls/internal/vectors"
)

// messagesVector is one entry of messages.json (test-vectors README,
// "Messages").
type messagesVector struct {
	MLSWelcome    vectors.Hex `json:"mls_welcome"`
	MLSGroupInfo  vectors.Hex `json:"mls_group_info"`
	MLSKeyPackage vectors.Hex `json:"mls_key_package"`
	RatchetTree   vectors.Hex `json:"ratchet_tree"`
	GroupSecrets  vectors.Hex `json:"group_secrets"`

	AddProposal                    vectors.Hex `json:"add_proposal"`
	UpdateProposal                 vectors.Hex `json:"update_proposal"`
	RemoveProposal                 vectors.Hex `json:"remove_proposal"`
	PreSharedKeyProposal           vectors.Hex `json:"pre_shared_key_proposal"`
	ReInitProposal                 vectors.Hex `json:"re_init_proposal"`
	ExternalInitProposal           vectors.Hex `json:"external_init_proposal"`
	GroupContextExtensionsProposal vectors.Hex `json:"group_context_extensions_proposal"`

	Commit vectors.Hex `json:"commit"`

	PublicMessageApplication vectors.Hex `json:"public_message_application"`
	PublicMessageProposal    vectors.Hex `json:"public_message_proposal"`
	PublicMessageCommit      vectors.Hex `json:"public_message_commit"`
	PrivateMessage           vectors.Hex `json:"private_message"`
}

// loadMessages reads messages.json. Without the vector directory the test
// is skipped, unless CI=true, where it fails.
func loadMessages(tb testing.TB) []messagesVector {
	tb.Helper()
	dir, err := vectors.Dir()
	if err != nil {
		tb.Fatal(err)
	}
	raw, err := vectors.Read(dir, "messages.json")
	if errors.Is(err, vectors.ErrNotFound) && os.Getenv("CI") != "true" {
		tb.Skipf("%v", err)
	}
	if err != nil {
		tb.Fatal(err)
	}
	var vs []messagesVector
	if err := json.Unmarshal(raw, &vs); err != nil {
		tb.Fatal(err)
	}
	if len(vs) == 0 {
		tb.Fatal("messages.json holds no vectors")
	}
	return vs
}

// field is one named byte string of a messages vector with a fresh value
// of the type it decodes as.
type field struct {
	name string
	b    []byte
	v    func() Decodable
}

func (v *messagesVector) fields() []field {
	return []field{
		{"mls_welcome", v.MLSWelcome, func() Decodable { return new(MLSMessage) }},
		{"mls_group_info", v.MLSGroupInfo, func() Decodable { return new(MLSMessage) }},
		{"mls_key_package", v.MLSKeyPackage, func() Decodable { return new(MLSMessage) }},
		{"ratchet_tree", v.RatchetTree, func() Decodable { return new(RatchetTree) }},
		{"group_secrets", v.GroupSecrets, func() Decodable { return new(GroupSecrets) }},
		{"add_proposal", v.AddProposal, func() Decodable { return new(AddProposal) }},
		{"update_proposal", v.UpdateProposal, func() Decodable { return new(UpdateProposal) }},
		{"remove_proposal", v.RemoveProposal, func() Decodable { return new(RemoveProposal) }},
		{"pre_shared_key_proposal", v.PreSharedKeyProposal, func() Decodable { return new(PreSharedKeyProposal) }},
		{"re_init_proposal", v.ReInitProposal, func() Decodable { return new(ReInitProposal) }},
		{"external_init_proposal", v.ExternalInitProposal, func() Decodable { return new(ExternalInitProposal) }},
		{"group_context_extensions_proposal", v.GroupContextExtensionsProposal, func() Decodable { return new(GroupContextExtensionsProposal) }},
		{"commit", v.Commit, func() Decodable { return new(Commit) }},
		{"public_message_application", v.PublicMessageApplication, func() Decodable { return new(MLSMessage) }},
		{"public_message_proposal", v.PublicMessageProposal, func() Decodable { return new(MLSMessage) }},
		{"public_message_commit", v.PublicMessageCommit, func() Decodable { return new(MLSMessage) }},
		{"private_message", v.PrivateMessage, func() Decodable { return new(MLSMessage) }},
	}
}
