package mls

import (
	"io"

	"github.com/mlskit/mls/internal/message"
)

// GREASE (RFC 9420, Section 13.5): a client SHOULD put random values from
// the reserved GREASE set into the fields where receivers must ignore
// unknown values, so that a receiver that wrongly rejects them fails
// early, in testing, rather than when a real extension appears.
//
// The Client does this by default for every LeafNode it creates (key
// packages, the creator's leaf of a new group, the joiner's leaf of an
// external commit, and a commit's leaf with new capabilities): one or two
// GREASE values in each of capabilities.cipher_suites, .extensions,
// .proposals and .credentials, and one GREASE extension in
// LeafNode.extensions whose type is among the GREASE extension types of
// its capabilities (Section 7.3 requires the two to agree). A key package
// also gets a GREASE extension in KeyPackage.extensions with a few random
// bytes of data, and so does every GroupInfo the client signs (exported or
// in a Welcome) in GroupInfo.extensions. Leaves that later replace these (updates, commits) start
// from the current leaf and so keep its GREASE values.
//
// GREASE is never sent where Section 13.5 forbids it: proposal types,
// credential types, GroupContext extensions.
//
// Received GREASE goes through the ordinary rules for unknown values. The
// one place the library looks at GREASE on receipt is where it compares a
// capabilities list with a requirement (required_capabilities, the types of
// custom proposals, group context extensions): Section 13.5 says a client's
// own capabilities never contain GREASE values, so no member supports one,
// and message.Supports reports a GREASE value as unsupported.
//
// ClientOptions.DisableGREASE turns it off.

// greaseLeaf adds GREASE values to a leaf node about to be signed: to its
// capabilities lists and one GREASE extension to its extensions.
func (c *Client) greaseLeaf(ln *message.LeafNode) error {
	if c == nil || c.opts.DisableGREASE {
		return nil
	}
	if err := c.greaseCapabilities(&ln.Capabilities); err != nil {
		return err
	}
	var exts []message.ExtensionType
	for _, e := range ln.Capabilities.Extensions {
		if message.IsGREASE(uint16(e)) && !hasExtension(ln.Extensions, e) {
			exts = append(exts, e)
		}
	}
	if len(exts) == 0 {
		return nil
	}
	pick, err := randIndex(c.rand(), len(exts))
	if err != nil {
		return err
	}
	ln.Extensions = append(ln.Extensions, message.Extension{Type: exts[pick], Data: []byte{}})
	return nil
}

// greaseCapabilities adds one or two GREASE values, new to each list, to
// every list of c's capabilities except versions.
func (c *Client) greaseCapabilities(caps *message.Capabilities) error {
	if c == nil || c.opts.DisableGREASE {
		return nil
	}
	r := c.rand()
	var err error
	if caps.CipherSuites, err = addGREASE(r, caps.CipherSuites); err != nil {
		return err
	}
	if caps.Extensions, err = addGREASE(r, caps.Extensions); err != nil {
		return err
	}
	if caps.Proposals, err = addGREASE(r, caps.Proposals); err != nil {
		return err
	}
	caps.Credentials, err = addGREASE(r, caps.Credentials)
	return err
}

// greaseNewCapabilities adds GREASE values to a leaf whose capabilities
// were just replaced (CommitOptions.LeafCapabilities) and lists again the
// type of every GREASE extension the leaf still carries, which the new
// capabilities must hold (RFC 9420, Section 7.3). The relisting happens
// with GREASE disabled too, so that a leaf made earlier stays valid.
func (c *Client) greaseNewCapabilities(ln *message.LeafNode) error {
	if err := c.greaseCapabilities(&ln.Capabilities); err != nil {
		return err
	}
	for _, e := range ln.Extensions {
		if message.IsGREASE(uint16(e.Type)) && !containsValue(ln.Capabilities.Extensions, e.Type) {
			ln.Capabilities.Extensions = append(ln.Capabilities.Extensions, e.Type)
		}
	}
	return nil
}

// greaseExtensions adds a GREASE extension with up to 15 random bytes of
// data to a key package's or a GroupInfo's extensions (RFC 9420, Section
// 13.5: "a sender might populate these extensions with a randomly sized
// amount of random data").
func (c *Client) greaseExtensions(exts []message.Extension) ([]message.Extension, error) {
	if c == nil || c.opts.DisableGREASE {
		return exts, nil
	}
	r := c.rand()
	var free []uint16
	for _, v := range message.GREASEValues() {
		if !hasExtension(exts, message.ExtensionType(v)) {
			free = append(free, v)
		}
	}
	if len(free) == 0 {
		return exts, nil
	}
	var b [2]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return nil, err
	}
	data := make([]byte, b[1]&0x0F)
	if _, err := io.ReadFull(r, data); err != nil {
		return nil, err
	}
	return append(exts, message.Extension{Type: message.ExtensionType(free[int(b[0])%len(free)]), Data: data}), nil
}

// addGREASE appends one or two GREASE values not yet in list.
func addGREASE[T ~uint16](r io.Reader, list []T) ([]T, error) {
	var b [3]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return nil, err
	}
	n := 1 + int(b[0]&1)
	out := list
	for i := 0; i < n; i++ {
		var free []T
		for _, v := range message.GREASEValues() {
			if !containsValue(out, T(v)) {
				free = append(free, T(v))
			}
		}
		if len(free) == 0 {
			break
		}
		out = append(out, free[int(b[1+i])%len(free)])
	}
	return out, nil
}

func containsValue[T comparable](s []T, v T) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

func hasExtension(exts []message.Extension, t message.ExtensionType) bool {
	_, ok := message.FindExtension(exts, t)
	return ok
}

func randIndex(r io.Reader, n int) (int, error) {
	var b [1]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return 0, err
	}
	return int(b[0]) % n, nil
}

// IsGREASE reports whether v is one of the GREASE values of RFC 9420,
// Section 13.5 (0x0A0A, 0x1A1A, ... 0xEAEA), which are reserved in every
// MLS registry and never name a real cipher suite, extension, proposal or
// credential type.
func IsGREASE(v uint16) bool { return message.IsGREASE(v) }

// CommonCipherSuites returns the cipher suites that every key package
// advertises in its capabilities and that this library implements, in the
// order of the first key package's list: the suites a group with all of
// them could use. GREASE values (RFC 9420, Section 13.5) and suites this
// library does not know are never returned.
func CommonCipherSuites(kps ...*KeyPackage) []CipherSuite {
	if len(kps) == 0 {
		return nil
	}
	var out []CipherSuite
	for _, cs := range kps[0].kp.LeafNode.Capabilities.CipherSuites {
		if message.IsGREASE(uint16(cs)) {
			continue
		}
		if _, err := lookupSuite(cs); err != nil {
			continue
		}
		all := true
		for _, k := range kps[1:] {
			if !containsValue(k.kp.LeafNode.Capabilities.CipherSuites, cs) {
				all = false
				break
			}
		}
		if all && !containsValue(out, cs) {
			out = append(out, cs)
		}
	}
	return out
}

// Extensions returns the GroupInfo's own extensions (RFC 9420, Section
// 12.4.3): ratchet_tree, external_pub, and whatever else the signer put
// there, GREASE among them.
func (g *GroupInfo) Extensions() []Extension { return fromWireExtensions(g.gi.Extensions) }
