package mls_test

import (
	"context"
	"fmt"
	"log"

	"github.com/mlskit/mls"
)

// draftCapabilities lists the proposal types of draft-ietf-mls-extensions
// and its app_data_dictionary extension.
var draftCapabilities = mls.Capabilities{
	Proposals:  []uint16{mls.ProposalTypeSelfRemove, mls.ProposalTypeAppDataUpdate},
	Extensions: []uint16{mls.ExtensionAppDataDictionary},
}

// A member asks to leave with a SelfRemove proposal (draft-ietf-mls-
// extensions); another member commits it by reference, with an UpdatePath,
// and the proposer learns from the commit that it is out.
func ExampleGroup_ProposeSelfRemove() {
	ctx := context.Background()
	alice, bob := exampleComponentJoin(mls.GroupConfig{Capabilities: draftCapabilities}, mls.KeyPackageOptions{Capabilities: draftCapabilities})
	prop, _, err := bob.ProposeSelfRemove(ctx)
	if err != nil {
		log.Fatal(err)
	}
	p, err := alice.Process(ctx, prop)
	if err != nil {
		log.Fatal(err)
	}
	if err := alice.StorePendingProposal(ctx, p.Proposal); err != nil {
		log.Fatal(err)
	}
	res, err := alice.CommitPendingProposals(ctx)
	if err != nil {
		log.Fatal(err)
	}
	if err := alice.MergePendingCommit(ctx); err != nil {
		log.Fatal(err)
	}
	q, err := bob.Process(ctx, res.Commit)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("bob removed:", q.Commit.SelfRemoved())
	if err := bob.MergeStagedCommit(ctx, q.Commit); err != nil {
		log.Fatal(err)
	}
	fmt.Println("bob active:", bob.IsActive(), "members:", len(alice.Members()))
	// Output:
	// bob removed: true
	// bob active: false members: 1
}

// AppDataUpdate proposals change entries of the GroupContext's
// app_data_dictionary without an UpdatePath (draft-ietf-mls-extensions):
// by reference (ProposeAppDataUpdate) or inline (CommitOptions).
func ExampleGroup_ProposeAppDataUpdate() {
	ctx := context.Background()
	alice, bob := exampleComponentJoin(mls.GroupConfig{Capabilities: draftCapabilities}, mls.KeyPackageOptions{Capabilities: draftCapabilities})
	prop, _, err := bob.ProposeAppDataUpdate(ctx, 0x8001, mls.AppDataOpUpdate, []byte("topic=lunch"))
	if err != nil {
		log.Fatal(err)
	}
	p, err := alice.Process(ctx, prop)
	if err != nil {
		log.Fatal(err)
	}
	if err := alice.StorePendingProposal(ctx, p.Proposal); err != nil {
		log.Fatal(err)
	}
	res, err := alice.Commit(ctx, mls.CommitOptions{AppDataUpdates: []mls.AppDataUpdate{{Component: 0x8002, Op: mls.AppDataOpUpdate, Data: []byte("v2")}}})
	if err != nil {
		log.Fatal(err)
	}
	if err := alice.MergePendingCommit(ctx); err != nil {
		log.Fatal(err)
	}
	q, err := bob.Process(ctx, res.Commit)
	if err != nil {
		log.Fatal(err)
	}
	if err := bob.MergeStagedCommit(ctx, q.Commit); err != nil {
		log.Fatal(err)
	}
	d, _, err := mls.FindAppDataDictionary(bob.Extensions())
	if err != nil {
		log.Fatal(err)
	}
	for _, c := range d {
		fmt.Printf("0x%04x %s\n", uint16(c.ID), c.Data)
	}
	// Removing an entry that is not there makes the commit invalid.
	_, err = alice.Commit(ctx, mls.CommitOptions{AppDataUpdates: []mls.AppDataUpdate{{Component: 0x8003, Op: mls.AppDataOpRemove}}})
	fmt.Println(err)
	// Output:
	// 0x8001 topic=lunch
	// 0x8002 v2
	// mls: AppDataUpdateRemoveAbsent (draft-ietf-mls-extensions, Updating Application Data in the GroupContext): AppDataUpdate removes component 0x8003, which has no data
}
