package mls_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log"

	"github.com/mlskit/mls"
)

// exampleComponentJoin creates alice's group with cfg and adds bob from a key
// package made with kpOpts; it returns both groups.
func exampleComponentJoin(cfg mls.GroupConfig, kpOpts mls.KeyPackageOptions) (*mls.Group, *mls.Group) {
	ctx := context.Background()
	alice, bob := newExClient("alice"), newExClient("bob")
	cfg.UseRatchetTreeExtension = true
	g, err := alice.client.CreateGroup(ctx, exampleSuite, cfg)
	if err != nil {
		log.Fatal(err)
	}
	kp, err := bob.client.NewKeyPackage(ctx, exampleSuite, kpOpts)
	if err != nil {
		log.Fatal(err)
	}
	res, err := g.AddMembers(ctx, kp)
	if err != nil {
		log.Fatal(err)
	}
	if err := g.MergePendingCommit(ctx); err != nil {
		log.Fatal(err)
	}
	sw, err := bob.client.StageWelcome(ctx, res.Welcome, mls.WelcomeOptions{})
	if err != nil {
		log.Fatal(err)
	}
	bg, err := sw.Join(ctx)
	if err != nil {
		log.Fatal(err)
	}
	return g, bg
}

// The app_data_dictionary extension (draft-ietf-mls-extensions) holds one
// entry per application component, sorted by component ID.
func ExampleAppDataDictionary() {
	d := mls.AppDataDictionary{}.Set(0x8002, []byte("theme=dark")).Set(0x8001, []byte("v1"))
	ext, err := d.Extension()
	if err != nil {
		log.Fatal(err)
	}
	// Carried in the GroupContext, every member agrees on it.
	alice, bob := exampleComponentJoin(mls.GroupConfig{GroupContextExtensions: []mls.Extension{ext},
		Capabilities: mls.Capabilities{Extensions: []uint16{mls.ExtensionAppDataDictionary}}},
		mls.KeyPackageOptions{Capabilities: mls.Capabilities{Extensions: []uint16{mls.ExtensionAppDataDictionary}}})
	_ = alice
	got, ok, err := mls.FindAppDataDictionary(bob.Extensions())
	if err != nil || !ok {
		log.Fatal(err)
	}
	for _, c := range got {
		fmt.Printf("0x%04x %s\n", uint16(c.ID), c.Data)
	}
	_, err = mls.ParseAppDataDictionary([]byte{0x08, 0x80, 0x02, 0x01, 'b', 0x80, 0x01, 0x01, 'a'})
	fmt.Println("unsorted:", errors.Is(err, mls.ErrMalformed))
	// Output:
	// 0x8001 v1
	// 0x8002 theme=dark
	// unsorted: true
}

// The safe exporter gives each component its own secret of the epoch.
func ExampleGroup_SafeExportSecret() {
	alice, bob := exampleComponentJoin(mls.GroupConfig{}, mls.KeyPackageOptions{})
	a, err := alice.SafeExportSecret(0x8001)
	if err != nil {
		log.Fatal(err)
	}
	b, err := bob.SafeExportSecret(0x8001)
	if err != nil {
		log.Fatal(err)
	}
	other, err := alice.SafeExportSecret(0x8002)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(len(a), bytes.Equal(a, b), bytes.Equal(a, other))
	// Output:
	// 32 true false
}

// Safe AAD: in a group whose GroupContext has the safe_aad component,
// authenticated_data is a list of per-component items.
func ExampleGroup_SealSafe() {
	ctx := context.Background()
	safe, err := mls.AppDataDictionary{}.Set(mls.ComponentSafeAAD, []byte{0}).Extension()
	if err != nil {
		log.Fatal(err)
	}
	alice, bob := exampleComponentJoin(mls.GroupConfig{GroupContextExtensions: []mls.Extension{safe},
		Capabilities: mls.Capabilities{Extensions: []uint16{mls.ExtensionAppDataDictionary}}},
		mls.KeyPackageOptions{Capabilities: mls.Capabilities{Extensions: []uint16{mls.ExtensionAppDataDictionary}}})
	msg, err := alice.SealSafe(ctx, []byte("hello"), []mls.SafeAADItem{{Component: 0x8001, Data: []byte("thread 7")}})
	if err != nil {
		log.Fatal(err)
	}
	p, err := bob.Process(ctx, msg)
	if err != nil {
		log.Fatal(err)
	}
	items, err := p.SafeAAD()
	if err != nil {
		log.Fatal(err)
	}
	v, _ := mls.SafeAADItemData(items, 0x8001)
	fmt.Printf("%s [%s]\n", p.ApplicationData, v)
	_, err = mls.ParseSafeAAD([]byte{0x05, 0x80, 0x01, 0x09, 'x'})
	fmt.Println("truncated item:", errors.Is(err, mls.ErrMalformed))
	// Output:
	// hello [thread 7]
	// truncated item: true
}

// Last-resort key packages come in OpenMLS's form (the default) and in
// the extensions draft's; both are recognised.
func ExampleLastResortForm() {
	ctx := context.Background()
	bob := newExClient("bob")
	for _, f := range []mls.LastResortForm{mls.LastResortOpenMLS, mls.LastResortDraft} {
		kp, err := bob.client.NewKeyPackage(ctx, exampleSuite, mls.KeyPackageOptions{LastResort: true, LastResortForm: f})
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("form %d: last resort %v, extension 0x%04x\n", f, kp.IsLastResort(), kp.Extensions()[0].Type)
	}
	_, err := bob.client.NewKeyPackage(ctx, exampleSuite, mls.KeyPackageOptions{LastResort: true, LastResortForm: 9})
	fmt.Println("unknown form:", errors.Is(err, mls.ErrInvalidArgument))
	// Output:
	// form 0: last resort true, extension 0x000a
	// form 1: last resort true, extension 0x0006
	// unknown form: true
}

// Component negotiation: a group requires components (app_components in
// its GroupContext's app_data_dictionary) and only members that list them
// in their leaf's app_components can join.
func ExampleGroup_RequiredComponents() {
	ctx := context.Background()
	list, err := mls.ComponentsList{0x8001}.MarshalBinary()
	if err != nil {
		log.Fatal(err)
	}
	req, err := mls.AppDataDictionary{}.Set(mls.ComponentAppComponents, list).Extension()
	if err != nil {
		log.Fatal(err)
	}
	caps := mls.Capabilities{Extensions: []uint16{mls.ExtensionAppDataDictionary}}
	// The creator's and bob's leaves support component 0x8001.
	alice, bob := exampleComponentJoin(mls.GroupConfig{GroupContextExtensions: []mls.Extension{req}, LeafExtensions: []mls.Extension{req}, Capabilities: caps},
		mls.KeyPackageOptions{LeafExtensions: []mls.Extension{req}, Capabilities: caps})
	got, _, _ := bob.RequiredComponents()
	fmt.Println("required:", got, "members:", len(alice.Members()))

	// Charlie's leaf does not list it: the Add is refused.
	charlie := newExClient("charlie")
	kp, err := charlie.client.NewKeyPackage(ctx, exampleSuite, mls.KeyPackageOptions{Capabilities: caps})
	if err != nil {
		log.Fatal(err)
	}
	_, err = alice.AddMembers(ctx, kp)
	var ve *mls.ValidationError
	fmt.Println(errors.As(err, &ve), ve.Rule)
	// Output:
	// required: [32769] members: 2
	// true ValSem106
}
