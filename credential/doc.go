// Package credential holds MLS credentials (RFC 9420, Section 5.3): the
// identity a member presents in its leaf node, bound to the leaf's signature
// key. MLS itself does not decide whether a credential is acceptable; that
// is the application's Authentication Service (Section 5.3.1), plugged into
// a group as a Validator. X509Validator is one for X.509 credentials, built
// on crypto/x509; its refusals are the sentinels ErrKeyMismatch,
// ErrCertificateExpired, ErrUnknownAuthority, ErrKeyUsage,
// ErrUnsupportedCertificate and ErrNoIdentity.
package credential
