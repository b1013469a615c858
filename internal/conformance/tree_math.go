package conformance

import (
	"encoding/json"
	"fmt"

	"github.com/mlskit/mls/internal/treemath"
)

func init() { register("tree-math.json", checkTreeMath) }

type treeMathVector struct {
	NLeaves uint32    `json:"n_leaves"`
	NNodes  uint32    `json:"n_nodes"`
	Root    uint32    `json:"root"`
	Left    []*uint32 `json:"left"`
	Right   []*uint32 `json:"right"`
	Parent  []*uint32 `json:"parent"`
	Sibling []*uint32 `json:"sibling"`
}

func checkTreeMath(raw []byte, r *Report) error {
	var vs []treeMathVector
	if err := json.Unmarshal(raw, &vs); err != nil {
		return err
	}
	for _, v := range vs {
		r.Check(fmt.Sprintf("n_leaves=%d", v.NLeaves), checkTreeMathVector(&v))
	}
	return nil
}

func checkTreeMathVector(v *treeMathVector) error {
	n := v.NLeaves
	if got := treemath.NodeWidth(n); got != v.NNodes {
		return fmt.Errorf("n_nodes: got %d, want %d", got, v.NNodes)
	}
	root := treemath.Root(n)
	if uint32(root) != v.Root {
		return fmt.Errorf("root: got %d, want %d", root, v.Root)
	}
	for i := uint32(0); i < v.NNodes; i++ {
		x := treemath.NodeIndex(i)
		check := func(what string, want []*uint32, valid bool, got treemath.NodeIndex) error {
			if int(i) >= len(want) {
				return fmt.Errorf("%s: vector has no entry for node %d", what, i)
			}
			w := want[i]
			switch {
			case w == nil && valid:
				return fmt.Errorf("%s[%d]: got %d, want none", what, i, got)
			case w != nil && !valid:
				return fmt.Errorf("%s[%d]: got none, want %d", what, i, *w)
			case w != nil && uint32(got) != *w:
				return fmt.Errorf("%s[%d]: got %d, want %d", what, i, got, *w)
			}
			return nil
		}
		leaf := x.IsLeaf()
		if err := check("left", v.Left, !leaf, treemath.Left(x)); err != nil {
			return err
		}
		if err := check("right", v.Right, !leaf, treemath.Right(x)); err != nil {
			return err
		}
		if err := check("parent", v.Parent, x != root, treemath.Parent(x, n)); err != nil {
			return err
		}
		var sib treemath.NodeIndex
		if x != root {
			sib = treemath.Sibling(x, n)
		}
		if err := check("sibling", v.Sibling, x != root, sib); err != nil {
			return err
		}
	}
	return nil
}
