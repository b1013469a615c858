package tree

import (
	"testing"

	"github.com/mlskit/mls/internal/message"
)

// TestLeafSignatures: leaf signatures checked in the background
// (VerifyLeafSignatures) give Validate's leaf checks the same result as
// checking them in place: the error of the lowest failing leaf, a
// capability failure below a bad signature first; checks for another
// group, for other leaf values or stopped early are not trusted.
func TestLeafSignatures(t *testing.T) {
	// 200 leaves: several chunks of 64 per worker. Built directly
	// (BuildFull), since growing it through commits is slow under -race.
	s := mustSuite(t, suite1)
	groupID := []byte("leaf signatures")
	f, err := BuildFull(s, groupID, 200, 7)
	if err != nil {
		t.Fatal(err)
	}
	copyTree := func(mut func(rt message.RatchetTree)) (*Tree, *message.SparseRatchetTree) {
		t.Helper()
		var rt message.RatchetTree
		if err := message.Unmarshal(message.MustMarshal(f.Tree().RatchetTree()), &rt); err != nil {
			t.Fatal(err)
		}
		mut(rt)
		sp := rt.Sparse()
		tr, err := FromSparse(s, sp, MaxLeaves)
		if err != nil {
			t.Fatal(err)
		}
		return tr, sp
	}
	badSig := func(leaves ...int) func(rt message.RatchetTree) {
		return func(rt message.RatchetTree) {
			for _, l := range leaves {
				rt[2*l].Leaf.Signature[5] ^= 1
			}
		}
	}
	noVersion := func(l int) func(rt message.RatchetTree) {
		return func(rt message.RatchetTree) { rt[2*l].Leaf.Capabilities.Versions = []message.ProtocolVersion{} }
	}
	both := func(fs ...func(rt message.RatchetTree)) func(rt message.RatchetTree) {
		return func(rt message.RatchetTree) {
			for _, f := range fs {
				f(rt)
			}
		}
	}
	cases := []struct {
		name string
		mut  func(rt message.RatchetTree)
		rule error
		at   NodeIndex
	}{
		{"valid", func(message.RatchetTree) {}, nil, 0},
		{"two bad signatures", badSig(150, 30), ErrLeafSignature, 60},
		{"capabilities below a bad signature", both(badSig(150), noVersion(20)), ErrCapabilities, 40},
		{"bad signature below capabilities", both(badSig(12), noVersion(20)), ErrLeafSignature, 24},
		{"bad signature of leaf 0", badSig(0), ErrLeafSignature, 0},
	}
	for _, c := range cases {
		check := func(how string, err error) {
			t.Helper()
			if c.rule == nil {
				if err != nil {
					t.Errorf("%s, %s: %v", c.name, how, err)
				}
				return
			}
			wantRule(t, c.name+", "+how, err, c.rule, c.at)
		}
		tr, sp := copyTree(c.mut)
		opts := Options{GroupID: groupID}
		check("checked in place", tr.View().verifyLeaves(&opts))

		opts.Signatures = VerifyLeafSignatures(s, sp, groupID)
		check("checked in the background", tr.View().verifyLeaves(&opts))
		opts.Signatures.Stop()

		// Stopped at once: the results are incomplete and not used.
		opts.Signatures = VerifyLeafSignatures(s, sp, groupID)
		opts.Signatures.Stop()
		check("stopped early", tr.View().verifyLeaves(&opts))

		// Checked for another group (every signature fails there):
		// ignored.
		opts.Signatures = VerifyLeafSignatures(s, sp, []byte("other group"))
		check("other group", tr.View().verifyLeaves(&opts))
		opts.Signatures.Stop()

		// Checked on other leaf values, those of a copy with every leaf
		// signature bad: not the tree's leaves, so ignored.
		_, otherSp := copyTree(badSig(0, 1, 2, 3, 100, 150))
		opts.Signatures = VerifyLeafSignatures(s, otherSp, groupID)
		check("other leaves", tr.View().verifyLeaves(&opts))
		opts.Signatures.Stop()
	}
}
