package mls_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"strings"

	"github.com/mlskit/mls"
	"github.com/mlskit/mls/ciphersuite"
	"github.com/mlskit/mls/credential"
	"github.com/mlskit/mls/storage/memory"
)

// The examples follow the chapters of the OpenMLS user manual
// (reference/openmls-book.txt) that the group layer covers. Each client
// has its own store, and messages travel as bytes, as they would through
// a delivery service.

// exampleSuite is the suite of the examples, the mandatory one.
const exampleSuite = mls.MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519

// exClient is one client of the examples: an identity, its store and, once
// it is in, its group.
type exClient struct {
	name   string
	client *mls.Client
	group  *mls.Group
}

// newExClient creates a client with a basic credential and a signature key
// that the client generates and keeps in its store. The examples accept
// every credential; a real application checks them (credential.Validator).
func newExClient(name string) *exClient {
	c, err := mls.NewClient(context.Background(), memory.New(), credential.NewBasic([]byte(name)), nil, credential.AcceptAll, mls.ClientOptions{})
	if err != nil {
		log.Fatal(err)
	}
	return &exClient{name: name, client: c}
}

// keyPackage creates a key package (its private keys go to c's store) and
// returns it as others see it: parsed from the published bytes.
func (c *exClient) keyPackage() *mls.KeyPackage {
	kp, err := c.client.NewKeyPackage(context.Background(), exampleSuite, mls.KeyPackageOptions{})
	if err != nil {
		log.Fatal(err)
	}
	b, err := kp.MarshalBinary()
	if err != nil {
		log.Fatal(err)
	}
	published, err := mls.ParseKeyPackage(b)
	if err != nil {
		log.Fatal(err)
	}
	return published
}

// exWire sends a message through the "delivery service": to bytes and
// back.
func exWire(m *mls.Message) *mls.Message {
	b, err := m.MarshalBinary()
	if err != nil {
		log.Fatal(err)
	}
	out, err := mls.ParseMessage(b)
	if err != nil {
		log.Fatal(err)
	}
	return out
}

// exGroup has the first client create a group and add the others, who
// join from the Welcome.
func exGroup(names ...string) []*exClient {
	ctx := context.Background()
	cs := make([]*exClient, len(names))
	for i, n := range names {
		cs[i] = newExClient(n)
	}
	var err error
	cs[0].group, err = cs[0].client.CreateGroup(ctx, exampleSuite, mls.GroupConfig{})
	if err != nil {
		log.Fatal(err)
	}
	if len(cs) == 1 {
		return cs
	}
	var kps []*mls.KeyPackage
	for _, c := range cs[1:] {
		kps = append(kps, c.keyPackage())
	}
	res, err := cs[0].group.AddMembers(ctx, kps...)
	if err != nil {
		log.Fatal(err)
	}
	if err := cs[0].group.MergePendingCommit(ctx); err != nil {
		log.Fatal(err)
	}
	tree, err := cs[0].group.ExportRatchetTree()
	if err != nil {
		log.Fatal(err)
	}
	for _, c := range cs[1:] {
		sw, err := c.client.StageWelcome(ctx, exWire(res.Welcome), mls.WelcomeOptions{RatchetTree: tree})
		if err != nil {
			log.Fatal(err)
		}
		if c.group, err = sw.Join(ctx); err != nil {
			log.Fatal(err)
		}
	}
	return cs
}

// receive processes a message; commits are merged at once.
func (c *exClient) receive(m *mls.Message) *mls.Processed {
	ctx := context.Background()
	p, err := c.group.Process(ctx, exWire(m))
	if err != nil {
		log.Fatalf("%s: %v", c.name, err)
	}
	if p.Kind == mls.KindCommit {
		if err := c.group.MergeStagedCommit(ctx, p.Commit); err != nil {
			log.Fatal(err)
		}
	}
	return p
}

// exNames lists the members' identities.
func exNames(ms []mls.Member) string {
	var out []string
	for _, m := range ms {
		out = append(out, string(m.Credential.Identity()))
	}
	return strings.Join(out, ", ")
}

// Credentials: a client is a credential (here a basic one, just an
// identity) bound to a signature key. The Signer can be any crypto.Signer
// of the suite's algorithm, such as a key held in an HSM.
func ExampleIdentity() {
	s, err := ciphersuite.Lookup(mls.MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519)
	if err != nil {
		log.Fatal(err)
	}
	signer, err := s.GenerateSignatureKey(nil)
	if err != nil {
		log.Fatal(err)
	}
	alice := mls.Identity{Credential: credential.NewBasic([]byte("alice")), Signer: signer}
	fmt.Println(alice.Credential.Type(), string(alice.Credential.Identity()))
	fmt.Println(alice.Credential)
	// Output:
	// basic alice
	// basic("alice")
}

// Key packages: clients publish key packages ahead of time; the private
// keys stay in the client's store, where the Welcome that uses the key
// package finds them.
func ExampleClient_NewKeyPackage() {
	ctx := context.Background()
	bob := newExClient("bob")
	kp, err := bob.client.NewKeyPackage(ctx, exampleSuite, mls.KeyPackageOptions{})
	if err != nil {
		log.Fatal(err)
	}
	published, err := kp.MarshalMessage()
	if err != nil {
		log.Fatal(err)
	}

	// Whoever fetches it from the delivery service parses and verifies it.
	got, err := mls.ParseKeyPackage(published)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(string(got.Credential().Identity()), got.CipherSuite())
	fmt.Println("last resort:", got.IsLastResort())

	// A last-resort key package may be used more than once.
	lr, err := bob.client.NewKeyPackage(ctx, exampleSuite, mls.KeyPackageOptions{LastResort: true})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("last resort:", lr.IsLastResort())
	// Output:
	// bob MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519
	// last resort: false
	// last resort: true
}

// Group configuration: GroupConfig holds what all members agree on (the
// suite, group context extensions, the creator's capabilities) and the
// creator's JoinConfig, the per-member settings that every joiner chooses
// for itself.
func ExampleGroupConfig() {
	ctx := context.Background()
	alice, bob := newExClient("alice"), newExClient("bob")
	join := mls.JoinConfig{
		PaddingSize:   100,
		MaxPastEpochs: 2,
		SenderRatchet: mls.SenderRatchetConfig{OutOfOrderTolerance: 10, MaxForwardDistance: 2000},
		// The Welcome and exported GroupInfo carry the ratchet tree.
		UseRatchetTreeExtension: true,
	}
	var err error
	alice.group, err = alice.client.CreateGroup(ctx, exampleSuite, mls.GroupConfig{
		JoinConfig:     join,
		LeafExtensions: []mls.Extension{{Type: 0xff00, Data: []byte{0, 1, 2, 3}}},
		Capabilities:   mls.Capabilities{Extensions: []uint16{0xff00}},
	})
	if err != nil {
		log.Fatal(err)
	}
	res, err := alice.group.AddMembers(ctx, bob.keyPackage())
	if err != nil {
		log.Fatal(err)
	}
	if err := alice.group.MergePendingCommit(ctx); err != nil {
		log.Fatal(err)
	}
	// With the ratchet tree extension, Bob needs nothing but the Welcome.
	sw, err := bob.client.StageWelcome(ctx, exWire(res.Welcome), mls.WelcomeOptions{JoinConfig: join})
	if err != nil {
		log.Fatal(err)
	}
	if bob.group, err = sw.Join(ctx); err != nil {
		log.Fatal(err)
	}
	fmt.Println("bob joined at epoch", bob.group.Epoch(), "with", exNames(bob.group.Members()))
	// Output:
	// bob joined at epoch 1 with alice, bob
}

// Creating groups: a group gets a random ID unless one is given.
func ExampleClient_CreateGroup() {
	ctx := context.Background()
	alice := newExClient("alice")
	g, err := alice.client.CreateGroup(ctx, exampleSuite, mls.GroupConfig{
		GroupID: []byte("123e4567e89b"), // given by the provider's server
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("group %q, epoch %d, members: %s, own leaf %d\n", g.GroupID(), g.Epoch(), exNames(g.Members()), g.OwnLeafIndex())

	random, err := alice.client.CreateGroup(ctx, exampleSuite, mls.GroupConfig{})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("random group ID of", len(random.GroupID()), "bytes")
	// Output:
	// group "123e4567e89b", epoch 0, members: alice, own leaf 0
	// random group ID of 16 bytes
}

// Joining a group from a Welcome is two steps: StageWelcome decrypts and
// verifies the Welcome, so that the joiner can look at the group and who
// invited it, then Join accepts.
func ExampleClient_StageWelcome() {
	ctx := context.Background()
	alice, bob := exGroup("alice")[0], newExClient("bob")
	res, err := alice.group.AddMembers(ctx, bob.keyPackage())
	if err != nil {
		log.Fatal(err)
	}
	// Send the Welcome only once the delivery service accepted the commit.
	if err := alice.group.MergePendingCommit(ctx); err != nil {
		log.Fatal(err)
	}
	tree, err := alice.group.ExportRatchetTree()
	if err != nil {
		log.Fatal(err)
	}

	staged, err := bob.client.StageWelcome(ctx, exWire(res.Welcome), mls.WelcomeOptions{RatchetTree: tree})
	if err != nil {
		log.Fatal(err)
	}
	inviter := staged.Sender()
	fmt.Printf("invited by %s to epoch %d of a group of %s\n", inviter.Credential.Identity(), staged.Epoch(), exNames(staged.Members()))
	bob.group, err = staged.Join(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("bob is at leaf", bob.group.OwnLeafIndex())
	// Output:
	// invited by alice to epoch 1 of a group of alice, bob
	// bob is at leaf 1
}

// Adding members at once: the commit goes to the members, the Welcome to
// the new ones.
func ExampleGroup_AddMembers() {
	ctx := context.Background()
	cs := exGroup("alice", "bob")
	alice, bob, charlie := cs[0], cs[1], newExClient("charlie")

	res, err := alice.group.AddMembers(ctx, charlie.keyPackage())
	if err != nil {
		log.Fatal(err)
	}
	if err := alice.group.MergePendingCommit(ctx); err != nil {
		log.Fatal(err)
	}
	p := bob.receive(res.Commit)
	for _, q := range p.Commit.AddProposals() {
		c, _ := q.AddedCredential()
		fmt.Printf("bob sees %s added\n", c.Identity())
	}
	fmt.Println("welcome:", res.Welcome != nil)
	fmt.Println("members:", exNames(bob.group.Members()))
	// Output:
	// bob sees charlie added
	// welcome: true
	// members: alice, bob, charlie
}

// Adding members by proposal: any member proposes, the members queue the
// proposal, and a later commit covers it.
func ExampleGroup_ProposeAdd() {
	ctx := context.Background()
	cs := exGroup("alice", "bob")
	alice, bob, charlie := cs[0], cs[1], newExClient("charlie")

	proposal, _, err := bob.group.ProposeAdd(ctx, charlie.keyPackage())
	if err != nil {
		log.Fatal(err)
	}
	p := alice.receive(proposal)
	c, _ := p.Proposal.AddedCredential()
	fmt.Printf("alice got a proposal from %s to add %s\n", p.Credential.Identity(), c.Identity())
	if err := alice.group.StorePendingProposal(ctx, p.Proposal); err != nil {
		log.Fatal(err)
	}

	res, err := alice.group.CommitPendingProposals(ctx)
	if err != nil {
		log.Fatal(err)
	}
	if err := alice.group.MergePendingCommit(ctx); err != nil {
		log.Fatal(err)
	}
	bob.receive(res.Commit)
	fmt.Println("members:", exNames(bob.group.Members()), "at epoch", bob.group.Epoch())
	// Output:
	// alice got a proposal from bob to add charlie
	// members: alice, bob, charlie at epoch 2
}

// exRemoveOperation says, with names, what a Remove proposal means to the
// member whose group is g (mls.NewRemoveOperation, OpenMLS's
// RemoveOperation).
func exRemoveOperation(g *mls.Group, q *mls.QueuedProposal) string {
	op, err := mls.NewRemoveOperation(q, g)
	if err != nil {
		log.Fatal(err)
	}
	name := func(leaf uint32) string {
		m, _ := g.Member(leaf)
		return string(m.Credential.Identity())
	}
	switch op.Kind {
	case mls.WeLeft:
		return "we left"
	case mls.WeWereRemovedBy:
		return "we were removed by " + name(op.By.Index)
	case mls.TheyLeft:
		return name(op.Removed) + " left"
	case mls.WeRemovedThem:
		return "we removed " + name(op.Removed)
	default:
		return name(op.Removed) + " was removed by " + name(op.By.Index)
	}
}

// Removing members, and interpreting remove operations: every member
// finds the Remove proposals in the staged commit before merging it, and
// the removed member learns it from SelfRemoved.
func ExampleGroup_RemoveMembers() {
	ctx := context.Background()
	cs := exGroup("alice", "bob", "charlie")
	alice, bob, charlie := cs[0], cs[1], cs[2]

	res, err := charlie.group.RemoveMembers(ctx, bob.group.OwnLeafIndex())
	if err != nil {
		log.Fatal(err)
	}
	if err := charlie.group.MergePendingCommit(ctx); err != nil {
		log.Fatal(err)
	}
	for _, c := range []*exClient{alice, bob} {
		p, err := c.group.Process(ctx, exWire(res.Commit))
		if err != nil {
			log.Fatal(err)
		}
		for _, q := range p.Commit.RemoveProposals() {
			fmt.Printf("%s: %s (self removed: %v)\n", c.name, exRemoveOperation(c.group, q), p.Commit.SelfRemoved())
		}
		if err := c.group.MergeStagedCommit(ctx, p.Commit); err != nil {
			log.Fatal(err)
		}
	}
	fmt.Println("welcome:", res.Welcome != nil)
	fmt.Println("bob active:", bob.group.IsActive())
	// A removed member can still look at the last membership list.
	fmt.Println("bob sees:", exNames(bob.group.Members()))
	_, err = bob.group.Seal(ctx, []byte("hello?"), nil)
	fmt.Println(errors.Is(err, mls.ErrInactive))
	// Output:
	// alice: bob was removed by charlie (self removed: false)
	// bob: we were removed by charlie (self removed: true)
	// welcome: false
	// bob active: false
	// bob sees: alice, charlie
	// true
}

// Updating own key material at once: a commit with a fresh path (forward
// secrecy and post-compromise security).
func ExampleGroup_SelfUpdate() {
	ctx := context.Background()
	cs := exGroup("alice", "bob")
	alice, bob := cs[0], cs[1]
	before, _ := alice.group.Member(bob.group.OwnLeafIndex())

	res, err := bob.group.SelfUpdate(ctx)
	if err != nil {
		log.Fatal(err)
	}
	if err := bob.group.MergePendingCommit(ctx); err != nil {
		log.Fatal(err)
	}
	alice.receive(res.Commit)
	after, _ := alice.group.Member(bob.group.OwnLeafIndex())
	fmt.Println("epoch", alice.group.Epoch(), "new key:", string(before.EncryptionKey) != string(after.EncryptionKey))
	fmt.Println("in sync:", string(alice.group.EpochAuthenticator()) == string(bob.group.EpochAuthenticator()))
	// Output:
	// epoch 2 new key: true
	// in sync: true
}

// Updating own key material by proposal: another member commits it.
func ExampleGroup_ProposeSelfUpdate() {
	ctx := context.Background()
	cs := exGroup("alice", "bob")
	alice, bob := cs[0], cs[1]

	proposal, _, err := bob.group.ProposeSelfUpdate(ctx)
	if err != nil {
		log.Fatal(err)
	}
	p := alice.receive(proposal)
	if err := alice.group.StorePendingProposal(ctx, p.Proposal); err != nil {
		log.Fatal(err)
	}
	res, err := alice.group.CommitPendingProposals(ctx)
	if err != nil {
		log.Fatal(err)
	}
	if err := alice.group.MergePendingCommit(ctx); err != nil {
		log.Fatal(err)
	}
	got := bob.receive(res.Commit)
	for _, q := range got.Commit.UpdateProposals() {
		c, _ := q.UpdatedCredential()
		fmt.Printf("%s's update committed by %s\n", c.Identity(), got.Credential.Identity())
	}
	fmt.Println("in sync at epoch", bob.group.Epoch(), string(alice.group.EpochAuthenticator()) == string(bob.group.EpochAuthenticator()))
	// Output:
	// bob's update committed by alice
	// in sync at epoch 2 true
}

// Leaving a group: a member proposes its own removal; another member must
// commit it.
func ExampleGroup_LeaveGroup() {
	ctx := context.Background()
	cs := exGroup("alice", "bob")
	alice, bob := cs[0], cs[1]

	leave, _, err := bob.group.LeaveGroup(ctx)
	if err != nil {
		log.Fatal(err)
	}
	p := alice.receive(leave)
	if err := alice.group.StorePendingProposal(ctx, p.Proposal); err != nil {
		log.Fatal(err)
	}
	res, err := alice.group.CommitPendingProposals(ctx)
	if err != nil {
		log.Fatal(err)
	}
	if err := alice.group.MergePendingCommit(ctx); err != nil {
		log.Fatal(err)
	}
	staged, err := bob.group.Process(ctx, exWire(res.Commit))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("bob:", exRemoveOperation(bob.group, staged.Commit.RemoveProposals()[0]))
	if err := bob.group.MergeStagedCommit(ctx, staged.Commit); err != nil {
		log.Fatal(err)
	}
	fmt.Println("bob active:", bob.group.IsActive(), "- alice's group:", exNames(alice.group.Members()))
	// Output:
	// bob: we left
	// bob active: false - alice's group: alice
}

// Application messages are PrivateMessages; the sender cannot decrypt its
// own, as its key is deleted at once (forward secrecy).
func ExampleGroup_Seal() {
	ctx := context.Background()
	cs := exGroup("alice", "bob", "charlie")
	alice := cs[0]
	msg, err := alice.group.Seal(ctx, []byte("Hi, I'm Alice!"), []byte("visible to the server"))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(msg.WireFormat(), "epoch", msg.Epoch())
	for _, c := range cs[1:] {
		p := c.receive(msg)
		fmt.Printf("%s reads %q from %s (authenticated data %q)\n", c.name, p.ApplicationData, p.Credential.Identity(), p.AuthenticatedData)
	}
	// Output:
	// PrivateMessage epoch 1
	// bob reads "Hi, I'm Alice!" from alice (authenticated data "visible to the server")
	// charlie reads "Hi, I'm Alice!" from alice (authenticated data "visible to the server")
}

// Processing incoming messages: parse the bytes, find the group by ID,
// process, and act on what the message carries.
func ExampleGroup_Process() {
	ctx := context.Background()
	cs := exGroup("alice", "bob")
	alice, bob := cs[0], cs[1]

	// Three messages arrive for Bob, as bytes.
	var inbox [][]byte
	for _, m := range []func() (*mls.Message, error){
		func() (*mls.Message, error) { return alice.group.Seal(ctx, []byte("hello"), nil) },
		func() (*mls.Message, error) {
			m, _, err := alice.group.ProposeSelfUpdate(ctx)
			return m, err
		},
		func() (*mls.Message, error) {
			res, err := alice.group.SelfUpdate(ctx)
			if err != nil {
				return nil, err
			}
			return res.Commit, alice.group.MergePendingCommit(ctx)
		},
	} {
		msg, err := m()
		if err != nil {
			log.Fatal(err)
		}
		b, err := msg.MarshalBinary()
		if err != nil {
			log.Fatal(err)
		}
		inbox = append(inbox, b)
	}

	for _, b := range inbox {
		msg, err := mls.ParseMessage(b)
		if err != nil {
			log.Fatal(err)
		}
		if string(msg.GroupID()) != string(bob.group.GroupID()) {
			continue // another group's
		}
		p, err := bob.group.Process(ctx, msg)
		if err != nil {
			log.Fatal(err)
		}
		switch p.Kind {
		case mls.KindApplication:
			fmt.Printf("message from %s: %q\n", p.Credential.Identity(), p.ApplicationData)
		case mls.KindProposal:
			fmt.Printf("proposal of type %d from %s: queued\n", p.Proposal.Type(), p.Credential.Identity())
			if err := bob.group.StorePendingProposal(ctx, p.Proposal); err != nil {
				log.Fatal(err)
			}
		case mls.KindCommit:
			fmt.Printf("commit from %s to epoch %d: merged\n", p.Credential.Identity(), p.Commit.Epoch())
			if err := bob.group.MergeStagedCommit(ctx, p.Commit); err != nil {
				log.Fatal(err)
			}
		}
	}
	fmt.Println("pending proposals:", len(bob.group.PendingProposals()))
	// Output:
	// message from alice: "hello"
	// proposal of type 2 from alice: queued
	// commit from alice to epoch 2: merged
	// pending proposals: 0
}
