package message

import (
	"bytes"
	"errors"
	"testing"

	"github.com/mlskit/mls/internal/wire"
)

// TestMarshalRejectsInconsistent checks that the Marshal methods refuse
// values whose union selector and fields disagree, instead of writing bytes
// that decode to something else.
func TestMarshalRejectsInconsistent(t *testing.T) {
	kp := sampleKeyPackage()
	leafWithHash := sampleLeafNode(LeafNodeSourceUpdate)
	leafWithHash.ParentHash = []byte{1}
	leafWithLifetime := sampleLeafNode(LeafNodeSourceCommit)
	leafWithLifetime.Lifetime.NotAfter = 5
	dupExts := []Extension{{Type: 1}, {Type: 1}}
	commitNoTag := samplePublicMessage(ContentCommit, Sender{Type: SenderMember})
	commitNoTag.Auth.ConfirmationTag = nil
	appWithTag := samplePublicMessage(ContentApplication, Sender{Type: SenderMember})
	appWithTag.Auth.ConfirmationTag = []byte{}
	memberNoTag := samplePublicMessage(ContentApplication, Sender{Type: SenderMember})
	memberNoTag.MembershipTag = nil
	externalWithTag := samplePublicMessage(ContentProposal, Sender{Type: SenderExternal})
	externalWithTag.MembershipTag = []byte{}
	badSender := samplePublicMessage(ContentApplication, Sender{Type: 9})
	badContent := samplePublicMessage(ContentApplication, Sender{Type: SenderMember})
	badContent.Content.ContentType = 7
	proposalMissing := samplePublicMessage(ContentProposal, Sender{Type: SenderExternal})
	proposalMissing.Content.Proposal = nil
	wrongBody := samplePublicMessage(ContentProposal, Sender{Type: SenderExternal})
	wrongBody.Content.Proposal = &Proposal{Type: ProposalAdd, Remove: &RemoveProposal{}}
	twoBodies := samplePublicMessage(ContentProposal, Sender{Type: SenderExternal})
	twoBodies.Content.Proposal = &Proposal{Type: ProposalRemove, Remove: &RemoveProposal{}, Update: &UpdateProposal{}}
	customWithBody := samplePublicMessage(ContentProposal, Sender{Type: SenderExternal})
	customWithBody.Content.Proposal = &Proposal{Type: 0xFF00, Remove: &RemoveProposal{}}
	commitBothRef := samplePublicMessage(ContentCommit, Sender{Type: SenderMember})
	commitBothRef.Content.Commit.Proposals[0].Reference = []byte{1}
	commitNeither := samplePublicMessage(ContentCommit, Sender{Type: SenderMember})
	commitNeither.Content.Commit.Proposals = []ProposalOrRef{{}}
	pskMixed := &GroupSecrets{PSKs: []PreSharedKeyID{{Type: PSKExternal, PSKID: []byte{1}, PSKEpoch: 3}}}
	pskUnknown := &GroupSecrets{PSKs: []PreSharedKeyID{{Type: 7}}}

	tests := []struct {
		name    string
		marshal func() ([]byte, error)
	}{
		{"leaf parent_hash for update", leafWithHash.Marshal},
		{"leaf lifetime for commit", leafWithLifetime.Marshal},
		{"leaf unknown source", (&LeafNode{Source: 0}).Marshal},
		{"leaf duplicate extensions", (&LeafNode{Source: LeafNodeSourceUpdate, Extensions: dupExts}).Marshal},
		{"key package duplicate extensions", (&KeyPackage{LeafNode: kp.LeafNode, Extensions: dupExts}).Marshal},
		{"group context duplicate extensions", (&GroupContext{Extensions: dupExts}).Marshal},
		{"group info duplicate extensions", (&GroupInfo{Extensions: dupExts}).Marshal},
		{"group info context duplicate extensions", (&GroupInfo{GroupContext: GroupContext{Extensions: dupExts}}).Marshal},
		{"node with neither", RatchetTree{{}}.Marshal},
		{"node with both", RatchetTree{{Leaf: &kp.LeafNode, Parent: &ParentNode{}}}.Marshal},
		{"commit without confirmation tag", commitNoTag.Marshal},
		{"application with confirmation tag", appWithTag.Marshal},
		{"member without membership tag", memberNoTag.Marshal},
		{"external with membership tag", externalWithTag.Marshal},
		{"unknown sender type", badSender.Marshal},
		{"unknown content type", badContent.Marshal},
		{"proposal content without proposal", proposalMissing.Marshal},
		{"proposal type and body differ", wrongBody.Marshal},
		{"proposal with two bodies", twoBodies.Marshal},
		{"custom proposal with typed body", customWithBody.Marshal},
		{"proposal or ref with both", commitBothRef.Marshal},
		{"proposal or ref with neither", commitNeither.Marshal},
		{"external PSK with resumption fields", pskMixed.Marshal},
		{"unknown PSK type", pskUnknown.Marshal},
		{"MLSMessage wrong version", (&MLSMessage{Version: 2, WireFormat: WireFormatWelcome, Welcome: sampleWelcome()}).Marshal},
		{"MLSMessage wire format mismatch", (&MLSMessage{Version: MLS10, WireFormat: WireFormatGroupInfo, Welcome: sampleWelcome()}).Marshal},
		{"MLSMessage no body", (&MLSMessage{Version: MLS10, WireFormat: WireFormatWelcome}).Marshal},
		{"MLSMessage two bodies", (&MLSMessage{Version: MLS10, WireFormat: WireFormatWelcome, Welcome: sampleWelcome(), GroupInfo: sampleGroupInfo()}).Marshal},
		{"MLSMessage unknown wire format", (&MLSMessage{Version: MLS10, WireFormat: 9, Welcome: sampleWelcome()}).Marshal},
		{"MLSMessage bad public message", NewPublicMessage(memberNoTag).Marshal},
		{"private message unknown content type", NewPrivateMessage(&PrivateMessage{ContentType: 0}).Marshal},
		{"authenticated content from a welcome", (&AuthenticatedContent{WireFormat: WireFormatWelcome,
			Content: sampleFramedContent(ContentApplication, Sender{Type: SenderMember}), Auth: sampleAuth(ContentApplication)}).Marshal},
	}
	for _, tt := range tests {
		b, err := tt.marshal()
		if !errors.Is(err, ErrInconsistent) && !errors.Is(err, ErrDuplicateExtension) {
			t.Errorf("%s: got %v (%x), want ErrInconsistent or ErrDuplicateExtension", tt.name, err, b)
		}
	}

	// Every sample is consistent, so every Marshal method accepts it and
	// agrees with the unchecked encoder.
	for name, m := range sampleMessages() {
		got, err := m.Marshal()
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if !bytes.Equal(got, MustMarshal(m)) {
			t.Errorf("%s: Marshal and MustMarshal differ", name)
		}
	}
	cm := sampleCommit()
	tree := sampleRatchetTree()
	gs := &GroupSecrets{JoinerSecret: []byte{1}, PSKs: samplePSKs()}
	ac := &AuthenticatedContent{WireFormat: WireFormatPublicMessage, Content: sampleFramedContent(ContentCommit, Sender{Type: SenderMember}), Auth: sampleAuth(ContentCommit)}
	for name, f := range map[string]func() ([]byte, error){
		"Commit": cm.Marshal, "RatchetTree": tree.Marshal, "GroupSecrets": gs.Marshal, "AuthenticatedContent": ac.Marshal,
		"FramedContent": ac.Content.Marshal, "Proposal": cm.Proposals[0].Proposal.Marshal, "KeyPackage": kp.Marshal,
	} {
		if _, err := f(); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// TestNilBodiesEncodeAsZero checks the documented fallback of the
// unchecked encoders: a nil union body encodes like its zero value.
func TestNilBodiesEncodeAsZero(t *testing.T) {
	pairs := [][2]Encodable{
		{&Proposal{Type: ProposalAdd}, &Proposal{Type: ProposalAdd, Add: &AddProposal{}}},
		{&Proposal{Type: ProposalGroupContextExtensions}, &Proposal{Type: ProposalGroupContextExtensions, GroupContextExtensions: &GroupContextExtensionsProposal{}}},
		{&FramedContent{ContentType: ContentCommit}, &FramedContent{ContentType: ContentCommit, Commit: &Commit{}}},
		{&MLSMessage{Version: MLS10, WireFormat: WireFormatGroupInfo}, &MLSMessage{Version: MLS10, WireFormat: WireFormatGroupInfo, GroupInfo: &GroupInfo{}}},
		{&Node{}, &Node{Parent: &ParentNode{}}},
	}
	for _, p := range pairs {
		if a, b := MustMarshal(p[0]), MustMarshal(p[1]); !bytes.Equal(a, b) {
			t.Errorf("%T: nil body encodes as %x, zero body as %x", p[0], a, b)
		}
	}
}

func TestAuthDataEncodeByPresence(t *testing.T) {
	withTag := &FramedContentAuthData{Signature: []byte{1}, ConfirmationTag: []byte{}}
	withoutTag := &FramedContentAuthData{Signature: []byte{1}}
	if got := MustMarshal(withTag); !bytes.Equal(got, []byte{1, 1, 0}) {
		t.Errorf("with tag: %x", got)
	}
	if got := MustMarshal(withoutTag); !bytes.Equal(got, []byte{1, 1}) {
		t.Errorf("without tag: %x", got)
	}
	var a FramedContentAuthData
	d := wire.NewDecoder([]byte{1, 1, 0})
	a.DecodeFor(d, ContentCommit)
	if err := d.Finish(); err != nil || a.ConfirmationTag == nil {
		t.Errorf("commit auth data: %v %+v", err, a)
	}
	d = wire.NewDecoder([]byte{1, 1, 0})
	a.DecodeFor(d, ContentProposal)
	if err := d.Finish(); !errors.Is(err, wire.ErrTrailingData) {
		t.Errorf("proposal auth data with a tag: %v", err)
	}
}

func TestNodeType(t *testing.T) {
	tree := sampleRatchetTree()
	if tree[0].Type() != NodeTypeLeaf || tree[1].Type() != NodeTypeParent {
		t.Fatalf("types %d %d", tree[0].Type(), tree[1].Type())
	}
	for _, s := range []Sender{{Type: SenderExternal, LeafIndex: 1}, {Type: SenderMember, SenderIndex: 1}, {Type: SenderNewMemberCommit, LeafIndex: 1}} {
		pm := samplePublicMessage(ContentProposal, s)
		if _, err := pm.Marshal(); !errors.Is(err, ErrInconsistent) {
			t.Errorf("sender %+v: got %v", s, err)
		}
	}
}
