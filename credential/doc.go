// Package credential holds MLS credentials (RFC 9420, Section 5.3): the
// identity a member presents in its leaf node, bound to the leaf's signature
// key. MLS itself does not decide whether a credential is acceptable; that
// is the application's Authentication Service (Section 5.3.1), plugged into
// a group as a Validator.
package credential
