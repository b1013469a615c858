package conformance

import (
	"encoding/json"
	"fmt"
	"slices"

	"github.com/mlskit/mls/internal/tree"
)

func init() { register("tree-validation.json", checkTreeValidation) }

type treeValidationVector struct {
	CipherSuite uint16     `json:"cipher_suite"`
	Tree        hx         `json:"tree"`
	GroupID     hx         `json:"group_id"`
	Resolutions [][]uint32 `json:"resolutions"`
	TreeHashes  []hx       `json:"tree_hashes"`
}

func checkTreeValidation(raw []byte, r *Report) error {
	var vs []treeValidationVector
	if err := json.Unmarshal(raw, &vs); err != nil {
		return err
	}
	for i, v := range vs {
		r.Check(fmt.Sprintf("%d/suite=%d", i, v.CipherSuite), checkTreeValidationVector(&v))
	}
	return nil
}

func checkTreeValidationVector(v *treeValidationVector) error {
	s, err := suiteFor(v.CipherSuite)
	if err != nil {
		return err
	}
	t, err := decodeTree(s, v.Tree)
	if err != nil {
		return fmt.Errorf("tree: %w", err)
	}
	view := t.View()
	w := int(view.Width())
	if len(v.Resolutions) != w || len(v.TreeHashes) != w {
		return fmt.Errorf("vector has %d resolutions and %d tree hashes for a tree of %d nodes", len(v.Resolutions), len(v.TreeHashes), w)
	}
	for i := range w {
		x := tree.NodeIndex(i)
		got := view.Resolution(x)
		want := make([]tree.NodeIndex, len(v.Resolutions[i]))
		for j, y := range v.Resolutions[i] {
			want[j] = tree.NodeIndex(y)
		}
		if !slices.Equal(got, want) {
			return fmt.Errorf("resolution of node %d: got %v, want %v", i, got, want)
		}
		if err := eq(fmt.Sprintf("tree hash of node %d", i), view.NodeHash(x), v.TreeHashes[i]); err != nil {
			return err
		}
	}
	// Parent hashes, unmerged leaves, key uniqueness and every leaf's
	// signature (with group_id as context), as a joiner checks the tree.
	// The leaves' lifetimes have long expired: the check is skipped.
	return t.Validate(v.TreeHashes[t.View().Width()/2], &tree.Options{GroupID: v.GroupID, SkipLifetime: true})
}
