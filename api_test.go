package mls_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mlskit/mls"
	"github.com/mlskit/mls/credential"
)

// msgOnly drops the ProposalRef of a Propose* result.
func msgOnly(m *mls.Message, _ mls.ProposalRef, err error) (*mls.Message, error) { return m, err }

// TestNilArguments calls every exported function and method that takes a
// pointer, a slice of pointers, an interface or a func with nil in each
// such argument (the receiver excepted): each must return an error that
// matches ErrInvalidArgument, and none may panic.
func TestNilArguments(t *testing.T) {
	ctx := context.Background()
	cs := newGroupOf(t, regressSuite, mls.GroupConfig{}, false, "alice", "bob")
	alice, bob := cs[0], cs[1]
	noSigner := mls.Identity{Credential: credential.NewBasic([]byte("x"))}
	kp := bob.keyPackage(t, regressSuite)
	gi := exportGroupInfo(t, alice, true)
	cases := []struct {
		name string
		call func() error
	}{
		{"NewJoinProposal/keyPackage", func() error { _, err := mls.NewJoinProposal(nil, bob.id.Signer, gi); return err }},
		{"NewJoinProposal/signer", func() error { _, err := mls.NewJoinProposal(kp, nil, gi); return err }},
		{"NewJoinProposal/groupInfo", func() error { _, err := mls.NewJoinProposal(kp, bob.id.Signer, nil); return err }},
		{"NewExternalProposal/signer", func() error {
			_, err := mls.NewExternalProposal([]byte("g"), 1, regressSuite, 0, nil, mls.RemoveProposal(1))
			return err
		}},
		{"NewExternalProposal/AddProposal(nil)", func() error {
			_, err := mls.NewExternalProposal([]byte("g"), 1, regressSuite, 0, bob.id.Signer, mls.AddProposal(nil))
			return err
		}},
		{"NewRemoveOperation/proposal", func() error { _, err := mls.NewRemoveOperation(nil, alice.group); return err }},
		{"NewRemoveOperation/group", func() error {
			q := &mls.QueuedProposal{}
			_, err := mls.NewRemoveOperation(q, nil)
			return err
		}},
		{"Group.AddMembers/kp", func() error { _, err := alice.group.AddMembers(ctx, nil); return err }},
		{"Group.Commit/Add", func() error {
			_, err := alice.group.Commit(ctx, mls.CommitOptions{Add: []*mls.KeyPackage{nil}})
			return err
		}},
		{"Group.Commit/NewIdentity", func() error { _, err := alice.group.Commit(ctx, mls.CommitOptions{NewIdentity: &noSigner}); return err }},
		{"Group.SelfUpdateWithNewSigner/signer", func() error { _, err := alice.group.SelfUpdateWithNewSigner(ctx, noSigner); return err }},
		{"Group.MergeStagedCommit/commit", func() error { return alice.group.MergeStagedCommit(ctx, nil) }},
		{"Group.MergeStagedCommit/zero", func() error { return alice.group.MergeStagedCommit(ctx, &mls.StagedCommit{}) }},
		{"Group.StorePendingProposal/zero", func() error { return alice.group.StorePendingProposal(ctx, &mls.QueuedProposal{}) }},
		{"NewRemoveOperation/zero", func() error { _, err := mls.NewRemoveOperation(&mls.QueuedProposal{}, alice.group); return err }},
		{"Group.Process/message", func() error { _, err := alice.group.Process(ctx, nil); return err }},
		{"Group.ProposeAdd/kp", func() error { _, _, err := alice.group.ProposeAdd(ctx, nil); return err }},
		{"Group.StorePendingProposal/proposal", func() error { return alice.group.StorePendingProposal(ctx, nil) }},
		{"Group.ReInitGroup/client", func() error {
			_, _, err := alice.group.ReInitGroup(ctx, nil, mls.GroupConfig{}, kp)
			return err
		}},
		{"Group.ReInitGroup/kp", func() error {
			_, _, err := alice.group.ReInitGroup(ctx, clientOf(alice.store, alice.id), mls.GroupConfig{}, nil)
			return err
		}},
		{"Group.RemoveMembersByIdentity/none", func() error { _, err := alice.group.RemoveMembersByIdentity(ctx); return err }},
		{"Message.GroupInfo/nil", func() error { _, err := (*mls.Message)(nil).GroupInfo(); return err }},
		{"Message.Welcome/nil", func() error { _, err := (*mls.Message)(nil).Welcome(); return err }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var err error
			func() {
				defer func() {
					if r := recover(); r != nil {
						t.Fatalf("panic: %v", r)
					}
				}()
				err = c.call()
			}()
			if !errors.Is(err, mls.ErrInvalidArgument) {
				t.Fatalf("err = %v, want ErrInvalidArgument", err)
			}
			t.Log(err)
		})
	}
	if alice.group.Epoch() != bob.group.Epoch() {
		t.Fatal("a rejected call changed the group")
	}
	// A zero QueuedProposal (not from this package) answers "none".
	var q mls.QueuedProposal
	if _, ok := q.KeyPackage(); ok {
		t.Fatal("zero QueuedProposal has a key package")
	}
	if _, ok := q.Removed(); ok {
		t.Fatal("zero QueuedProposal removes a leaf")
	}
	if _, ok := q.PreSharedKey(); ok {
		t.Fatal("zero QueuedProposal has a PSK")
	}
	if _, ok := q.CustomType(); ok {
		t.Fatal("zero QueuedProposal is a custom proposal")
	}
	if q.Type() != 0 || q.Ref() != nil || q.String() == "" {
		t.Fatalf("zero QueuedProposal: type %v ref %x", q.Type(), q.Ref())
	}
}

// internalLeaks returns, for one parsed file, the exported declarations
// whose signature mentions a package under internal/: function and method
// parameters and results (methods of exported types only), exported
// struct fields and embedded types, interface methods, type definitions
// and aliases, and the types of exported variables and constants.
func internalLeaks(fset *token.FileSet, f *ast.File) []string {
	internal := map[string]bool{}
	for _, imp := range f.Imports {
		path, _ := strconv.Unquote(imp.Path.Value)
		if !strings.Contains(path, "/internal/") && !strings.HasPrefix(path, "internal/") {
			continue
		}
		name := path[strings.LastIndex(path, "/")+1:]
		if imp.Name != nil {
			name = imp.Name.Name
		}
		internal[name] = true
	}
	var out []string
	mentions := func(what string, n ast.Node) {
		if n == nil {
			return
		}
		ast.Inspect(n, func(n ast.Node) bool {
			if sel, ok := n.(*ast.SelectorExpr); ok {
				if id, ok := sel.X.(*ast.Ident); ok && internal[id.Name] {
					out = append(out, fset.Position(sel.Pos()).String()+": "+what+" mentions "+id.Name+"."+sel.Sel.Name)
				}
			}
			return true
		})
	}
	for _, d := range f.Decls {
		switch d := d.(type) {
		case *ast.FuncDecl:
			if !d.Name.IsExported() {
				continue
			}
			if d.Recv != nil {
				t := d.Recv.List[0].Type
				if s, ok := t.(*ast.StarExpr); ok {
					t = s.X
				}
				if id, ok := t.(*ast.Ident); !ok || !id.IsExported() {
					continue
				}
			}
			mentions(d.Name.Name, d.Type)
		case *ast.GenDecl:
			for _, s := range d.Specs {
				switch s := s.(type) {
				case *ast.TypeSpec:
					if !s.Name.IsExported() {
						continue
					}
					switch t := s.Type.(type) {
					case *ast.StructType:
						for _, fld := range t.Fields.List {
							exported := len(fld.Names) == 0 // embedded
							for _, n := range fld.Names {
								exported = exported || n.IsExported()
							}
							if exported {
								mentions(s.Name.Name+" field", fld.Type)
							}
						}
					default:
						mentions(s.Name.Name, s.Type)
					}
				case *ast.ValueSpec:
					exported := false
					for _, n := range s.Names {
						exported = exported || n.IsExported()
					}
					if !exported {
						continue
					}
					if s.Type != nil {
						mentions(s.Names[0].Name, s.Type)
						continue
					}
					// Without a declared type the value decides it: a
					// conversion to a local type is fine, a value or call
					// from an internal package is not.
					for _, v := range s.Values {
						switch v := v.(type) {
						case *ast.CallExpr:
							if _, local := v.Fun.(*ast.Ident); !local {
								mentions(s.Names[0].Name, v.Fun)
							}
						case *ast.CompositeLit:
							mentions(s.Names[0].Name, v.Type)
						default:
							mentions(s.Names[0].Name, v)
						}
					}
				}
			}
		}
	}
	return out
}

// TestNoInternalTypesExported fails if an exported identifier of the root
// package or of credential/ mentions an internal/ package in its
// signature (issue 9: users cannot name such types).
func TestNoInternalTypesExported(t *testing.T) {
	// The checker itself must catch each kind of leak.
	const leaky = `package p
import (
	"github.com/mlskit/mls/internal/message"
	w "github.com/mlskit/mls/internal/wire"
)
func F(c message.Credential) {}
type T struct{ X message.Credential; y message.Credential }
func (T) M() *w.Encoder { return nil }
type A = message.Credential
var V = message.Marshal
type I interface{ M(message.Credential) }
func f(c message.Credential) {}
type u struct{ X message.Credential }
func (u) M(message.Credential) {}
const C = Local(message.MLS10)
`
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "leaky.go", leaky, 0)
	if err != nil {
		t.Fatal(err)
	}
	if got := internalLeaks(fset, f); len(got) != 6 {
		t.Fatalf("the checker found %d leaks in the sample, want 6 (F, T.X, T.M, A, V, I):\n%s", len(got), strings.Join(got, "\n"))
	}

	files := 0
	for _, dir := range []string{".", "credential"} {
		names, err := filepath.Glob(filepath.Join(dir, "*.go"))
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range names {
			if strings.HasSuffix(name, "_test.go") {
				continue
			}
			src, err := os.ReadFile(name)
			if err != nil {
				t.Fatal(err)
			}
			f, err := parser.ParseFile(fset, name, src, 0)
			if err != nil {
				t.Fatal(err)
			}
			files++
			for _, leak := range internalLeaks(fset, f) {
				t.Error(leak)
			}
		}
	}
	if files < 10 {
		t.Fatalf("scanned only %d files", files)
	}
}

// TestEnumStrings: every exported enum prints its RFC 9420 name (or the
// constant's name), and unknown values print their number.
func TestEnumStrings(t *testing.T) {
	for _, c := range []struct {
		got  fmt.Stringer
		want string
	}{
		{mls.ProposalAdd, "add"},
		{mls.ProposalUpdate, "update"},
		{mls.ProposalRemove, "remove"},
		{mls.ProposalPSK, "psk"},
		{mls.ProposalReInit, "reinit"},
		{mls.ProposalExternalInit, "external_init"},
		{mls.ProposalGroupContextExtensions, "group_context_extensions"},
		{mls.ProposalType(0xff10), "ProposalType(0xff10)"},
		{mls.SenderMember, "member"},
		{mls.SenderExternal, "external"},
		{mls.SenderNewMemberProposal, "new_member_proposal"},
		{mls.SenderNewMemberCommit, "new_member_commit"},
		{mls.SenderType(9), "SenderType(9)"},
		{mls.Sender{Type: mls.SenderMember, Index: 3}, "member 3"},
		{mls.Sender{Type: mls.SenderExternal, Index: 0}, "external 0"},
		{mls.Sender{Type: mls.SenderNewMemberProposal}, "new_member_proposal"},
		{mls.Sender{Type: mls.SenderNewMemberCommit, Index: 4}, "new_member_commit"},
		{mls.KindApplication, "application"},
		{mls.KindProposal, "proposal"},
		{mls.KindCommit, "commit"},
		{mls.AcceptAny, "AcceptAny"},
		{mls.AcceptPublicOnly, "AcceptPublicOnly"},
		{mls.AcceptPrivateOnly, "AcceptPrivateOnly"},
		{mls.IncomingPolicy(7), "IncomingPolicy(7)"},
		{mls.WireFormatPublicMessage, "PublicMessage"},
		{mls.WireFormatPrivateMessage, "PrivateMessage"},
		{mls.WireFormatWelcome, "Welcome"},
		{mls.WireFormatGroupInfo, "GroupInfo"},
		{mls.WireFormatKeyPackage, "KeyPackage"},
		{mls.LeafNodeSourceKeyPackage, "key_package"},
		{mls.LeafNodeSourceUpdate, "update"},
		{mls.LeafNodeSourceCommit, "commit"},
		{mls.LeafNodeSource(0), "LeafNodeSource(0)"},
		{mls.PSKExternal, "external"},
		{mls.PSKResumption, "resumption"},
		{mls.ResumptionApplication, "application"},
		{mls.ResumptionReInit, "reinit"},
		{mls.ResumptionBranch, "branch"},
		{mls.WeLeft, "we left"},
		{credential.Basic, "basic"},
		{credential.X509, "x509"},
		{regressSuite, "MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519"},
	} {
		if s := c.got.String(); s != c.want {
			t.Errorf("%T %v: String() = %q, want %q", c.got, c.got, s, c.want)
		}
	}
}

// TestKeyPackageAndMemberAccessors: what NewKeyPackage was given comes
// back from the parsed key package and, once the owner joined, from its
// Member: keys, capabilities, both kinds of extensions and the lifetime
// (RFC 9420, Sections 7.2 and 10).
func TestKeyPackageAndMemberAccessors(t *testing.T) {
	ctx := context.Background()
	now := time.Now().Truncate(time.Second)
	caps := mls.Capabilities{Extensions: []uint16{0xff01}, Proposals: []uint16{0xff02}, Credentials: []credential.Type{credential.X509}}
	bob := newClient(t, "bob", regressSuite)
	// Without GREASE (grease.go), so that exactly what was given comes back.
	kp0, err := clientWith(bob.store, bob.id, credential.AcceptAll, mls.ClientOptions{Now: func() time.Time { return now }, DisableGREASE: true}).NewKeyPackage(ctx, regressSuite, mls.KeyPackageOptions{
		Lifetime:       48 * time.Hour,
		Capabilities:   caps,
		Extensions:     []mls.Extension{{Type: 0xff03, Data: []byte("kp ext")}},
		LeafExtensions: []mls.Extension{{Type: 0xff01, Data: []byte("leaf ext")}},
	})
	if err != nil {
		t.Fatal(err)
	}
	raw, err := kp0.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	kp, err := mls.ParseKeyPackage(raw)
	if err != nil {
		t.Fatal(err)
	}
	checkLeaf := func(what string, ln *mls.LeafNode) {
		t.Helper()
		if ln == nil {
			t.Fatalf("%s: no leaf node", what)
		}
		if got := ln.Credential(); string(got.Identity()) != "bob" {
			t.Fatalf("%s: credential %v", what, got)
		}
		if !bytes.Equal(ln.SignatureKey(), kp.SignatureKey()) || !bytes.Equal(ln.EncryptionKey(), kp.EncryptionKey()) {
			t.Fatalf("%s: keys differ from the key package's", what)
		}
		c := ln.Capabilities()
		if !slices.Contains(c.CipherSuites, regressSuite) || !slices.Equal(c.Extensions, []uint16{0xff01}) || !slices.Equal(c.Proposals, []uint16{0xff02}) ||
			!slices.Contains(c.Credentials, credential.Basic) || !slices.Contains(c.Credentials, credential.X509) {
			t.Fatalf("%s: capabilities %+v", what, c)
		}
		if e := ln.Extensions(); len(e) != 1 || e[0].Type != 0xff01 || string(e[0].Data) != "leaf ext" {
			t.Fatalf("%s: leaf extensions %v", what, e)
		}
		nb, na, ok := ln.Lifetime()
		// NewKeyPackage backdates not_before by an hour (clock skew).
		if !ok || !nb.Equal(now.Add(-time.Hour)) || !na.Equal(now.Add(48*time.Hour)) {
			t.Fatalf("%s: lifetime %v .. %v (%v), want %v .. %v", what, nb, na, ok, now.Add(-time.Hour), now.Add(48*time.Hour))
		}
		if ln.Source() != mls.LeafNodeSourceKeyPackage {
			t.Fatalf("%s: source %v", what, ln.Source())
		}
	}
	checkLeaf("key package", kp.LeafNode())
	if len(kp.InitKey()) != 32 || bytes.Equal(kp.InitKey(), kp.EncryptionKey()) || !bytes.Equal(kp.InitKey(), kp0.InitKey()) {
		t.Fatalf("init key %x", kp.InitKey())
	}
	if e := kp.Extensions(); len(e) != 1 || e[0].Type != 0xff03 || string(e[0].Data) != "kp ext" {
		t.Fatalf("key package extensions %v", e)
	}
	if nb, na := kp.Lifetime(); !nb.Equal(now.Add(-time.Hour)) || !na.Equal(now.Add(48*time.Hour)) {
		t.Fatalf("KeyPackage.Lifetime %v .. %v", nb, na)
	}
	if c := kp.Capabilities(); !slices.Equal(c.Proposals, []uint16{0xff02}) {
		t.Fatalf("KeyPackage.Capabilities %+v", c)
	}
	// Accessors return copies.
	kp.InitKey()[0] ^= 1
	kp.LeafNode().Extensions()[0].Data[0] ^= 1
	if !bytes.Equal(kp.InitKey(), kp0.InitKey()) || string(kp.LeafNode().Extensions()[0].Data) != "leaf ext" {
		t.Fatal("an accessor exposed the key package's state")
	}

	alice := newGroupOf(t, regressSuite, mls.GroupConfig{}, false, "alice")[0]
	commitAndFan(t, alice, mls.CommitOptions{Add: []*mls.KeyPackage{kp}})
	m, ok := alice.group.Member(1)
	if !ok {
		t.Fatal("no member at leaf 1")
	}
	checkLeaf("Group.Member", m.LeafNode())
	ms := alice.group.Members()
	if len(ms) != 2 || ms[1].Index != 1 {
		t.Fatalf("Members: %v", ms)
	}
	checkLeaf("Group.Members", ms[1].LeafNode())
	if !bytes.Equal(m.SignatureKey, kp.SignatureKey()) || !bytes.Equal(m.EncryptionKey, kp.EncryptionKey()) || string(m.Credential.Identity()) != "bob" {
		t.Fatal("Member fields differ from the key package")
	}
	if (mls.Member{}).LeafNode() != nil {
		t.Fatal("a zero Member has a leaf node")
	}
}

// TestQueuedProposalPayload: a received proposal exposes its payload, and
// the ProposalRef that Propose* returned is the one the receiver computes
// (RFC 9420, Section 5.2).
func TestQueuedProposalPayload(t *testing.T) {
	ctx := context.Background()
	const custom = 0xff10
	caps := mls.Capabilities{Proposals: []uint16{custom}, Extensions: []uint16{0xff20}}
	cs := newGroupOf(t, regressSuite, mls.GroupConfig{Capabilities: caps}, false, "alice")
	alice := cs[0]
	bob := newClient(t, "bob", regressSuite)
	kpB, err := clientOf(bob.store, bob.id).NewKeyPackage(ctx, regressSuite, mls.KeyPackageOptions{Capabilities: caps})
	if err != nil {
		t.Fatal(err)
	}
	res := commitAndFan(t, alice, mls.CommitOptions{Add: []*mls.KeyPackage{kpB}})
	rt, _ := alice.group.ExportRatchetTree()
	bob.join(t, roundTrip(t, res.Welcome), mls.JoinConfig{}, rt)

	receive := func(m *mls.Message, ref mls.ProposalRef, err error) *mls.QueuedProposal {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		q := alice.receiveProposal(t, m)
		if len(ref) != 32 || !bytes.Equal(q.Ref(), ref) {
			t.Fatalf("%v: received ref %x, Propose* returned %x", q, q.Ref(), ref)
		}
		pending := bob.group.PendingProposals()
		if !bytes.Equal(pending[len(pending)-1].Ref(), ref) {
			t.Fatal("the returned ref is not the queued proposal's")
		}
		if s := q.Sender(); s.Type != mls.SenderMember || s.Index != 1 {
			t.Fatalf("%v: sender %v", q, s)
		}
		return q
	}

	dave := newClient(t, "dave", regressSuite)
	kpD := dave.keyPackage(t, regressSuite)
	q := receive(bob.group.ProposeAdd(ctx, kpD))
	got, ok := q.KeyPackage()
	if q.Type() != mls.ProposalAdd || !ok || !bytes.Equal(got.Ref(), kpD.Ref()) || !bytes.Equal(got.InitKey(), kpD.InitKey()) {
		t.Fatalf("Add: key package %v, %v", got, ok)
	}
	if _, ok := q.LeafNode(); ok {
		t.Fatal("an Add has an Update leaf node")
	}

	q = receive(bob.group.ProposeSelfUpdate(ctx))
	ln, ok := q.LeafNode()
	if old, _ := alice.group.Member(1); q.Type() != mls.ProposalUpdate || !ok || ln.Source() != mls.LeafNodeSourceUpdate || bytes.Equal(ln.EncryptionKey(), old.EncryptionKey) {
		t.Fatalf("Update: leaf %v, %v", ln, ok)
	}
	if _, _, ok := ln.Lifetime(); ok {
		t.Fatal("an Update leaf reports a lifetime (RFC 9420, Section 7.2: only key_package leaves have one)")
	}

	for _, c := range []*client{alice, bob} {
		if err := loaderOf(c.store, nil).StorePSK(ctx, []byte("psk"), bytes.Repeat([]byte{7}, 32)); err != nil {
			t.Fatal(err)
		}
	}
	q = receive(bob.group.ProposePSK(ctx, []byte("psk")))
	psk, ok := q.PreSharedKey()
	if !ok || psk.Type != mls.PSKExternal || string(psk.ID) != "psk" || len(psk.Nonce) != 32 || psk.GroupID != nil {
		t.Fatalf("PSK: %+v, %v", psk, ok)
	}

	q = receive(bob.group.ProposeGroupContextExtensions(ctx, []mls.Extension{{Type: 0xff20, Data: []byte("x")}}))
	if e, ok := q.GroupContextExtensions(); !ok || len(e) != 1 || e[0].Type != 0xff20 || string(e[0].Data) != "x" {
		t.Fatalf("GroupContextExtensions: %v, %v", e, ok)
	}

	q = receive(bob.group.ProposeCustom(ctx, custom, []byte("body")))
	if ct, ok := q.CustomType(); !ok || ct != custom || q.Type() != mls.ProposalType(custom) {
		t.Fatalf("custom type %#x, %v", ct, ok)
	}
	if d, ok := q.CustomData(); !ok || string(d) != "body" {
		t.Fatalf("custom data %q, %v", d, ok)
	}
	if _, ok := q.KeyPackage(); ok {
		t.Fatal("a custom proposal has a key package")
	}

	q = receive(bob.group.ProposeReInit(ctx, []byte("group v2"), mls.MLS_128_DHKEMP256_AES128GCM_SHA256_P256, nil))
	if p, ok := q.ReInit(); !ok || string(p.GroupID) != "group v2" || p.CipherSuite != mls.MLS_128_DHKEMP256_AES128GCM_SHA256_P256 || p.Version != 1 {
		t.Fatalf("ReInit: %+v, %v", p, ok)
	}

	// A Remove, and a resumption PSK inline in a commit (no ref).
	for _, c := range []*client{alice, bob} {
		for _, p := range c.group.PendingProposals() {
			if err := c.group.RemovePendingProposal(ctx, p.Ref()); err != nil {
				t.Fatal(err)
			}
		}
	}
	epoch := alice.group.Epoch()
	res, err = alice.group.Commit(ctx, mls.CommitOptions{ResumptionPSKs: []uint64{epoch}, Remove: []uint32{1}})
	if err != nil {
		t.Fatal(err)
	}
	p, err := bob.group.Process(ctx, roundTrip(t, res.Commit))
	if err != nil {
		t.Fatal(err)
	}
	rm := p.Commit.RemoveProposals()
	if len(rm) != 1 || rm[0].Ref() != nil {
		t.Fatalf("remove proposals %v", rm)
	}
	if l, ok := rm[0].Removed(); !ok || l != 1 {
		t.Fatalf("Removed() = %d, %v", l, ok)
	}
	ps := p.Commit.PSKProposals()
	if len(ps) != 1 {
		t.Fatalf("PSK proposals %v", ps)
	}
	psk, _ = ps[0].PreSharedKey()
	if psk.Type != mls.PSKResumption || psk.Usage != mls.ResumptionApplication || !bytes.Equal(psk.GroupID, alice.group.GroupID()) || psk.Epoch != epoch || psk.ID != nil {
		t.Fatalf("resumption PSK %+v", psk)
	}
	if _, ok := ps[0].PSKID(); ok {
		t.Fatal("PSKID() reports an external id for a resumption PSK")
	}
}

// TestRemoveByIdentity: members are removed by credential identity, by
// commit or by proposal; an identity no other member holds gives
// ErrNotFound and changes nothing; one held by two devices cannot be
// proposed away in one Remove.
func TestRemoveByIdentity(t *testing.T) {
	ctx := context.Background()
	cs := newGroupOf(t, regressSuite, mls.GroupConfig{}, false, "alice", "bob", "charlie", "dave")
	alice, bob, charlie, dave := cs[0], cs[1], cs[2], cs[3]
	epoch := alice.group.Epoch()
	for _, id := range []string{"nobody", "alice"} {
		if _, err := alice.group.RemoveMembersByIdentity(ctx, []byte("bob"), []byte(id)); !errors.Is(err, mls.ErrNotFound) {
			t.Fatalf("RemoveMembersByIdentity(%q): %v, want ErrNotFound", id, err)
		}
		if _, _, err := alice.group.ProposeRemoveIdentity(ctx, []byte(id)); !errors.Is(err, mls.ErrNotFound) {
			t.Fatalf("ProposeRemoveIdentity(%q): %v, want ErrNotFound", id, err)
		}
	}
	if alice.group.Epoch() != epoch || alice.group.PendingCommit() != nil || len(alice.group.PendingProposals()) != 0 {
		t.Fatal("a failed removal changed the group")
	}

	// By proposal: bob proposes charlie's removal, alice commits it.
	m, ref, err := bob.group.ProposeRemoveIdentity(ctx, []byte("charlie"))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []*client{alice, charlie, dave} {
		q := c.receiveProposal(t, m)
		if l, ok := q.Removed(); !ok || l != 2 || !bytes.Equal(q.Ref(), ref) {
			t.Fatalf("%s: received %v removing %d", c.name, q, l)
		}
	}
	commitAndFan(t, alice, mls.CommitOptions{}, bob, dave)
	if _, ok := alice.group.Member(2); ok {
		t.Fatal("charlie is still a member")
	}

	// A second device of dave's: the identity is held twice.
	dave2 := newClient(t, "dave", regressSuite)
	res := commitAndFan(t, alice, mls.CommitOptions{Add: []*mls.KeyPackage{dave2.keyPackage(t, regressSuite)}}, bob, dave)
	rt, _ := alice.group.ExportRatchetTree()
	dave2.join(t, roundTrip(t, res.Welcome), mls.JoinConfig{}, rt)
	ms := alice.group.MembersByIdentity([]byte("dave"))
	if len(ms) != 2 || ms[0].Index != 2 || ms[1].Index != 3 {
		t.Fatalf("MembersByIdentity(dave): %v", ms)
	}
	if _, _, err := bob.group.ProposeRemoveIdentity(ctx, []byte("dave")); !errors.Is(err, mls.ErrInvalidArgument) {
		t.Fatalf("ProposeRemoveIdentity of a two-device identity: %v, want ErrInvalidArgument", err)
	}

	// By commit: both of dave's leaves go; a device removing its own
	// identity removes only the other devices.
	res, err = dave.group.RemoveMembersByIdentity(ctx, []byte("dave"))
	if err != nil {
		t.Fatal(err)
	}
	if err := dave.group.ClearPendingCommit(ctx); err != nil {
		t.Fatal(err)
	}
	p, err := alice.group.Process(ctx, roundTrip(t, res.Commit))
	if err != nil {
		t.Fatal(err)
	}
	if rm := p.Commit.RemoveProposals(); len(rm) != 1 {
		t.Fatalf("dave removing its own identity removes %d leaves, want 1 (the other device)", len(rm))
	}
	commitAndFan(t, bob, mls.CommitOptions{RemoveIdentities: [][]byte{[]byte("dave")}}, alice)
	for _, m := range alice.group.Members() {
		if string(m.Credential.Identity()) == "dave" {
			t.Fatalf("dave still at leaf %d", m.Index)
		}
	}
	if n := len(alice.group.Members()); n != 2 {
		t.Fatalf("%d members left, want 2 (alice and bob)", n)
	}
	agree(t, alice, bob)
}

// quicVarint encodes a length as RFC 9420, Section 2.1.2 does (the
// variable-length integer of RFC 9000, Section 16), for expected outputs.
func quicVarint(n int) []byte {
	switch {
	case n < 1<<6:
		return []byte{byte(n)}
	case n < 1<<14:
		return []byte{0x40 | byte(n>>8), byte(n)}
	}
	return []byte{0x80 | byte(n>>24), byte(n >> 16), byte(n >> 8), byte(n)}
}

// TestEncodings: KeyPackage, GroupInfo and Welcome encode bare and as an
// MLSMessage (RFC 9420, Section 6: version mls10 = 0x0001, then the
// wire_format, then the body), and each Parse function accepts both; a
// ratchet tree encodes bare and as a ratchet_tree extension. The parsed
// objects work: the Welcome joins, the GroupInfo joins externally.
func TestEncodings(t *testing.T) {
	ctx := context.Background()
	cs := newGroupOf(t, regressSuite, mls.GroupConfig{}, false, "alice", "bob")
	alice, bob := cs[0], cs[1]
	carol := newClient(t, "carol", regressSuite)
	kp := carol.keyPackage(t, regressSuite)
	res, err := alice.group.AddMembers(ctx, kp)
	if err != nil {
		t.Fatal(err)
	}
	if err := alice.group.MergePendingCommit(ctx); err != nil {
		t.Fatal(err)
	}
	bob.processCommit(t, res.Commit)
	welcome, err := res.Welcome.Welcome()
	if err != nil {
		t.Fatal(err)
	}
	gi, err := res.GroupInfo.GroupInfo()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := res.Welcome.GroupInfo(); !errors.Is(err, mls.ErrInvalidArgument) {
		t.Fatalf("Message.GroupInfo of a Welcome: %v", err)
	}
	if _, err := res.GroupInfo.Welcome(); !errors.Is(err, mls.ErrInvalidArgument) {
		t.Fatalf("Message.Welcome of a GroupInfo: %v", err)
	}

	type codec struct {
		name       string
		wireFormat byte
		bare, msg  func() ([]byte, error)
		parse      func([]byte) ([]byte, []byte, error) // bare and message re-encodings
	}
	two := func(bare, msg func() ([]byte, error)) ([]byte, []byte, error) {
		b, err := bare()
		if err != nil {
			return nil, nil, err
		}
		m, err := msg()
		return b, m, err
	}
	codecs := []codec{
		{"KeyPackage", 5, kp.MarshalBinary, kp.MarshalMessage, func(b []byte) ([]byte, []byte, error) {
			k, err := mls.ParseKeyPackage(b)
			if err != nil {
				return nil, nil, err
			}
			return two(k.MarshalBinary, k.MarshalMessage)
		}},
		{"GroupInfo", 4, gi.MarshalBinary, gi.MarshalMessage, func(b []byte) ([]byte, []byte, error) {
			g, err := mls.ParseGroupInfo(b)
			if err != nil {
				return nil, nil, err
			}
			return two(g.MarshalBinary, g.MarshalMessage)
		}},
		{"Welcome", 3, welcome.MarshalBinary, welcome.MarshalMessage, func(b []byte) ([]byte, []byte, error) {
			w, err := mls.ParseWelcome(b)
			if err != nil {
				return nil, nil, err
			}
			return two(w.MarshalBinary, w.MarshalMessage)
		}},
	}
	for _, c := range codecs {
		bare, err := c.bare()
		if err != nil {
			t.Fatal(err)
		}
		msg, err := c.msg()
		if err != nil {
			t.Fatal(err)
		}
		if want := append([]byte{0, 1, 0, c.wireFormat}, bare...); !bytes.Equal(msg, want) {
			t.Fatalf("%s: MarshalMessage is not 0001 %04x || MarshalBinary", c.name, c.wireFormat)
		}
		for _, in := range [][]byte{bare, msg} {
			b, m, err := c.parse(in)
			if err != nil || !bytes.Equal(b, bare) || !bytes.Equal(m, msg) {
				t.Fatalf("%s: parse of %d bytes: %v", c.name, len(in), err)
			}
		}
		for _, in := range [][]byte{bare, msg} {
			for n := range len(in) {
				if _, _, err := c.parse(in[:n]); err == nil {
					t.Fatalf("%s: a %d-byte prefix of %d parsed", c.name, n, len(in))
				}
			}
			if _, _, err := c.parse(append(slices.Clip(in), 0)); err == nil {
				t.Fatalf("%s: trailing byte accepted", c.name)
			}
		}
	}
	// Each Parse rejects the others' messages, with ErrMalformed for the
	// new ones.
	wMsg, _ := welcome.MarshalMessage()
	giMsg, _ := gi.MarshalMessage()
	if _, err := mls.ParseGroupInfo(wMsg); !errors.Is(err, mls.ErrMalformed) {
		t.Fatalf("ParseGroupInfo(Welcome): %v", err)
	}
	if _, err := mls.ParseWelcome(giMsg); !errors.Is(err, mls.ErrMalformed) {
		t.Fatalf("ParseWelcome(GroupInfo): %v", err)
	}
	if _, err := mls.ParseKeyPackage(giMsg); err == nil {
		t.Fatal("ParseKeyPackage(GroupInfo) succeeded")
	}
	if refs := welcome.KeyPackageRefs(); len(refs) != 1 || !bytes.Equal(refs[0], kp.Ref()) {
		t.Fatalf("Welcome.KeyPackageRefs: %x", refs)
	}
	if gi.Epoch() != alice.group.Epoch() || !bytes.Equal(gi.GroupID(), alice.group.GroupID()) || gi.CipherSuite() != regressSuite || welcome.CipherSuite() != regressSuite {
		t.Fatal("GroupInfo / Welcome accessors disagree with the group")
	}

	// The ratchet tree.
	rtRaw, err := alice.group.ExportRatchetTree()
	if err != nil {
		t.Fatal(err)
	}
	rt, err := mls.ParseRatchetTree(rtRaw)
	if err != nil {
		t.Fatal(err)
	}
	ext, err := rt.MarshalExtension()
	if err != nil {
		t.Fatal(err)
	}
	// extension_type ratchet_tree (0x0002), extension_data<V>.
	if want := append(append([]byte{0, 2}, quicVarint(len(rtRaw))...), rtRaw...); !bytes.Equal(ext, want) {
		t.Fatal("MarshalExtension is not 0002 || varint(len) || tree")
	}
	for _, in := range [][]byte{rtRaw, ext} {
		got, err := mls.ParseRatchetTree(in)
		if err != nil {
			t.Fatal(err)
		}
		if b, _ := got.MarshalBinary(); !bytes.Equal(b, rtRaw) {
			t.Fatal("ratchet tree did not round trip")
		}
		for n := range len(in) {
			if _, err := mls.ParseRatchetTree(in[:n]); !errors.Is(err, mls.ErrMalformed) {
				t.Fatalf("ratchet tree prefix of %d bytes: %v", n, err)
			}
		}
	}
	if e := rt.Extension(); e.Type != 2 || !bytes.Equal(e.Data, rtRaw) {
		t.Fatalf("RatchetTree.Extension: type %d", e.Type)
	}

	// Parsed objects work: carol joins from the bare Welcome and the bare
	// tree; erin joins externally from the bare GroupInfo.
	wBare, _ := welcome.MarshalBinary()
	pw, err := mls.ParseWelcome(wBare)
	if err != nil {
		t.Fatal(err)
	}
	treeBare, _ := rt.MarshalBinary()
	carol.join(t, pw.Message(), mls.JoinConfig{}, treeBare)
	agree(t, alice, bob, carol)
	giBare, _ := gi.MarshalBinary()
	pgi, err := mls.ParseGroupInfo(giBare)
	if err != nil {
		t.Fatal(err)
	}
	erin := newClient(t, "erin", regressSuite)
	_, ext2, err := clientOf(erin.store, erin.id).JoinExternal(ctx, pgi.Message(), mls.ExternalJoinOptions{RatchetTree: treeBare})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := alice.group.Process(ctx, roundTrip(t, ext2.Commit)); err != nil {
		t.Fatalf("external commit from a parsed bare GroupInfo: %v", err)
	}
}

// TestCommitWireFormat: CommitOptions.WireFormat frames one commit
// differently from the group's default, within the incoming policy that
// every member shares; outside it, or for a non-handshake format, the
// commit fails with ErrInvalidArgument and ErrWireFormat and nothing
// changes.
func TestCommitWireFormat(t *testing.T) {
	ctx := context.Background()
	cs := newGroupOf(t, regressSuite, mls.GroupConfig{}, false, "alice", "bob")
	alice, bob := cs[0], cs[1]
	for _, c := range []struct {
		wf, want mls.WireFormat
	}{
		{0, mls.WireFormatPublicMessage}, // the policy's default
		{mls.WireFormatPrivateMessage, mls.WireFormatPrivateMessage},
		{mls.WireFormatPublicMessage, mls.WireFormatPublicMessage},
	} {
		res := commitAndFan(t, alice, mls.CommitOptions{ForcePath: true, WireFormat: c.wf}, bob)
		if got := res.Commit.WireFormat(); got != c.want {
			t.Fatalf("WireFormat %v: commit is a %v, want %v", c.wf, got, c.want)
		}
	}
	agree(t, alice, bob)

	for _, policy := range []mls.WireFormatPolicy{
		{Incoming: mls.AcceptPublicOnly},
		{OutgoingPrivate: true, Incoming: mls.AcceptPrivateOnly},
	} {
		cs := newGroupOf(t, regressSuite, mls.GroupConfig{JoinConfig: mls.JoinConfig{WireFormatPolicy: policy}}, false, "alice", "bob")
		alice, bob := cs[0], cs[1]
		forbidden := mls.WireFormatPrivateMessage
		if policy.Incoming == mls.AcceptPrivateOnly {
			forbidden = mls.WireFormatPublicMessage
		}
		epoch, auth := alice.group.Epoch(), alice.group.EpochAuthenticator()
		for _, wf := range []mls.WireFormat{forbidden, mls.WireFormatWelcome, mls.WireFormatGroupInfo, mls.WireFormatKeyPackage, 9} {
			_, err := alice.group.Commit(ctx, mls.CommitOptions{ForcePath: true, WireFormat: wf})
			if !errors.Is(err, mls.ErrInvalidArgument) || !errors.Is(err, mls.ErrWireFormat) {
				t.Fatalf("policy %v, WireFormat %v: %v, want ErrInvalidArgument and ErrWireFormat", policy.Incoming, wf, err)
			}
		}
		if alice.group.PendingCommit() != nil || alice.group.Epoch() != epoch || !bytes.Equal(alice.group.EpochAuthenticator(), auth) {
			t.Fatal("a refused commit changed the group")
		}
		allowed := mls.WireFormatPublicMessage + mls.WireFormatPrivateMessage - forbidden
		res := commitAndFan(t, alice, mls.CommitOptions{ForcePath: true, WireFormat: allowed}, bob)
		if res.Commit.WireFormat() != allowed {
			t.Fatalf("commit is a %v, want %v", res.Commit.WireFormat(), allowed)
		}
		agree(t, alice, bob)
	}
}

// TestResumptionPSKRetention: JoinConfig.ResumptionPSKRetention bounds
// how far back a commit may reach for a resumption PSK (RFC 9420,
// Section 8.6). A member keeping 2 epochs rejects a commit naming an
// epoch 3 back with a *ValidationError (rule ResumptionPSKRetention, which
// also matches PSKMissing) and is unchanged; 2 back still works.
func TestResumptionPSKRetention(t *testing.T) {
	ctx := context.Background()
	alice := newGroupOf(t, regressSuite, mls.GroupConfig{}, false, "alice")[0]
	bob := newClient(t, "bob", regressSuite)
	res := commitAndFan(t, alice, mls.CommitOptions{Add: []*mls.KeyPackage{bob.keyPackage(t, regressSuite)}})
	rt, _ := alice.group.ExportRatchetTree()
	bob.join(t, roundTrip(t, res.Welcome), mls.JoinConfig{ResumptionPSKRetention: 2}, rt)
	for range 4 {
		commitAndFan(t, alice, mls.CommitOptions{ForcePath: true}, bob)
	}
	now := alice.group.Epoch()
	res, err := alice.group.Commit(ctx, mls.CommitOptions{ResumptionPSKs: []uint64{now - 3}})
	if err != nil {
		t.Fatalf("alice keeps 8 epochs by default: %v", err)
	}
	epoch, auth := bob.group.Epoch(), bob.group.EpochAuthenticator()
	_, err = bob.group.Process(ctx, roundTrip(t, res.Commit))
	var ve *mls.ValidationError
	if !errors.As(err, &ve) || ve.Rule != "ResumptionPSKRetention" || ve.Section != "8.6" || !errors.Is(err, &mls.ValidationError{Rule: "PSKMissing"}) {
		t.Fatalf("commit naming epoch %d at epoch %d: %v, want ValidationError ResumptionPSKRetention", now-3, now, err)
	}
	if bob.group.Epoch() != epoch || !bytes.Equal(bob.group.EpochAuthenticator(), auth) {
		t.Fatal("a rejected commit changed the group")
	}
	if err := alice.group.ClearPendingCommit(ctx); err != nil {
		t.Fatal(err)
	}
	commitAndFan(t, alice, mls.CommitOptions{ResumptionPSKs: []uint64{now - 2, now - 1, now}}, bob)
	agree(t, alice, bob)

	// bob, committing, is held to his own retention, which his stored
	// state keeps across a restart.
	if bob.group, err = clientOf(bob.store, bob.id).LoadGroup(ctx, bob.group.GroupID()); err != nil {
		t.Fatal(err)
	}
	_, err = bob.group.Commit(ctx, mls.CommitOptions{ResumptionPSKs: []uint64{bob.group.Epoch() - 3}})
	if !errors.As(err, &ve) || ve.Rule != "ResumptionPSKRetention" {
		t.Fatalf("own commit beyond the retention: %v", err)
	}
	// A negative retention keeps only the current epoch's.
	carol := newGroupOf(t, regressSuite, mls.GroupConfig{JoinConfig: mls.JoinConfig{ResumptionPSKRetention: -1}}, false, "carol")[0]
	commitAndFan(t, carol, mls.CommitOptions{ForcePath: true})
	if _, err := carol.group.Commit(ctx, mls.CommitOptions{ResumptionPSKs: []uint64{carol.group.Epoch() - 1}}); !errors.As(err, &ve) || ve.Rule != "ResumptionPSKRetention" {
		t.Fatalf("retention -1, previous epoch: %v", err)
	}
	commitAndFan(t, carol, mls.CommitOptions{ResumptionPSKs: []uint64{carol.group.Epoch()}})
}
