// Package tree implements the ratchet tree of RFC 9420 (Sections 4, 7 and
// 12.4.3): its nodes, resolutions and filtered direct paths (Section 4.1),
// leaf node validation (Section 7.3), the tree operations of Add, Update and
// Remove (Sections 7.7 and 12.1), tree hashes (Section 7.8), parent hashes
// (Section 7.9), the validation of a received tree (Section 12.4.3.1), and
// TreeKEM: creating and processing UpdatePaths (Sections 7.4 to 7.6).
//
// A *Tree is the tree of the current epoch. It is never changed in place by
// protocol processing: every change is made on a *Diff, a copy-on-write
// overlay holding only the nodes that changed, and becomes visible in the
// Tree only when the caller merges the Diff. A rejected commit therefore
// leaves the tree exactly as it was, and staging a commit in a tree of N
// members costs O(log N) plus the size of the change, not O(N).
//
// Tree hashes and resolution sizes are cached per node. A Diff records which
// nodes changed and recomputes only them and their ancestors, so a change at
// one leaf costs O(log N) hashes. Key uniqueness (Section 7.3) is checked
// against maps from encryption and signature keys to nodes, maintained
// incrementally, so each check is O(1).
//
// LeafNode and ParentNode values handed to the tree are kept by reference
// and never modified afterwards; the tree replaces them instead. Callers must
// not modify values they passed in or got out.
package tree
