// Package group is the public half of the MLS group state machine (RFC
// 9420): the state of an epoch that needs no secret (GroupContext, ratchet
// tree, transcript hashes), the checks of Sections 6, 7, 12.1 and 12.2 that
// need none either, and the staging of a commit's public half (proposal
// list, tree diff, UpdatePath, next GroupContext).
//
// mls.Group and mls.PublicGroup both run it; Group adds the secrets (path
// decryption, key schedule, secret tree) on top of a commit staged here.
// Every validation rule is written once, here or (for those that need a
// secret) in the root package.
package group
