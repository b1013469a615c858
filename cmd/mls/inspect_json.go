package main

import (
	"bufio"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/mlskit/mls/ciphersuite"
	"github.com/mlskit/mls/internal/message"
)

// This file renders the structures of RFC 9420 as JSON. Field names are the
// RFC's (the struct definitions of Sections 5 to 12), in the RFC's order.
// Byte strings (keys, signatures, hashes, references, ciphertexts) are hex.
// Enumerations are the RFC's names as strings, or "0x..." for a value the
// RFC does not name; cipher suites are {"id", "name"}. A few values the
// RFC defines but no wire field carries are added after the fields they
// come from: key_package_ref for a KeyPackage (Section 5.2), and
// identity_string / subject / issuer / not_after for credentials.

// obj is a JSON object that keeps its keys in insertion order.
type obj struct {
	keys []string
	vals []any
}

func newObj() *obj { return &obj{} }

func (o *obj) add(k string, v any) *obj {
	o.keys = append(o.keys, k)
	o.vals = append(o.vals, v)
	return o
}

func (o *obj) merge(p *obj) {
	o.keys = append(o.keys, p.keys...)
	o.vals = append(o.vals, p.vals...)
}

// hexBytes is a byte string shown in hex; the writer streams it.
type hexBytes []byte

func hx(b []byte) hexBytes {
	if b == nil {
		return hexBytes{}
	}
	return hexBytes(b)
}

// lazyList is a JSON array whose elements are built one at a time while it
// is written, so that rendering a long vector (a ratchet tree of many
// blank nodes, a list of empty extensions) holds one element's JSON at a
// time, never the whole list's.
type lazyList struct {
	n    int
	elem func(i int) any
}

func list(n int, elem func(i int) any) lazyList { return lazyList{n, elem} }

// enumName returns names[v], or v in hex when the RFC gives it no name.
func enumName[T ~uint8 | ~uint16](v T, width int, names map[T]string) string {
	if n, ok := names[v]; ok {
		return n
	}
	return fmt.Sprintf("0x%0*x", width, uint64(v))
}

var (
	versionNames     = map[message.ProtocolVersion]string{message.MLS10: "mls10"}
	wireFormatNames  = map[message.WireFormat]string{1: "mls_public_message", 2: "mls_private_message", 3: "mls_welcome", 4: "mls_group_info", 5: "mls_key_package"}
	contentTypeNames = map[message.ContentType]string{1: "application", 2: "proposal", 3: "commit"}
	senderTypeNames  = map[message.SenderType]string{1: "member", 2: "external", 3: "new_member_proposal", 4: "new_member_commit"}
	// Extension types of RFC 9420, Section 17.3, and last_resort (0x000a,
	// from the MLS extensions draft, which this library's key packages use).
	extensionNames = map[message.ExtensionType]string{1: "application_id", 2: "ratchet_tree", 3: "required_capabilities",
		4: "external_pub", 5: "external_senders", extLastResort: "last_resort"}
	proposalNames = map[message.ProposalType]string{1: "add", 2: "update", 3: "remove", 4: "psk", 5: "reinit",
		6: "external_init", 7: "group_context_extensions"}
	credentialNames = map[message.CredentialType]string{1: "basic", 2: "x509"}
	sourceNames     = map[message.LeafNodeSource]string{1: "key_package", 2: "update", 3: "commit"}
	pskTypeNames    = map[message.PSKType]string{1: "external", 2: "resumption"}
	usageNames      = map[message.ResumptionPSKUsage]string{1: "application", 2: "reinit", 3: "branch"}
)

const extLastResort message.ExtensionType = 0x000a

func jsonSuite(id ciphersuite.ID) *obj {
	return newObj().add("id", uint16(id)).add("name", id.String())
}

func enumList[T ~uint8 | ~uint16](vs []T, width int, names map[T]string) lazyList {
	return list(len(vs), func(i int) any { return enumName(vs[i], width, names) })
}

// RFC 9420, Section 6.

func jsonMLSMessage(m *message.MLSMessage) *obj {
	o := newObj().add("version", enumName(m.Version, 4, versionNames)).add("wire_format", enumName(m.WireFormat, 4, wireFormatNames))
	switch {
	case m.PublicMessage != nil:
		o.add("public_message", jsonPublicMessage(m.PublicMessage))
	case m.PrivateMessage != nil:
		o.add("private_message", jsonPrivateMessage(m.PrivateMessage))
	case m.Welcome != nil:
		o.add("welcome", jsonWelcome(m.Welcome))
	case m.GroupInfo != nil:
		o.add("group_info", jsonGroupInfo(m.GroupInfo))
	case m.KeyPackage != nil:
		o.add("key_package", jsonKeyPackage(m.KeyPackage))
	}
	return o
}

func jsonPublicMessage(m *message.PublicMessage) *obj {
	o := newObj().add("content", jsonFramedContent(&m.Content)).add("auth", jsonAuth(&m.Auth, m.Content.ContentType))
	if m.Content.Sender.Type == message.SenderMember {
		o.add("membership_tag", hx(m.MembershipTag))
	}
	return o
}

func jsonSender(s message.Sender) *obj {
	o := newObj().add("sender_type", enumName(s.Type, 2, senderTypeNames))
	switch s.Type {
	case message.SenderMember:
		o.add("leaf_index", s.LeafIndex)
	case message.SenderExternal:
		o.add("sender_index", s.SenderIndex)
	}
	return o
}

func jsonFramedContent(c *message.FramedContent) *obj {
	o := newObj().add("group_id", hx(c.GroupID)).add("epoch", c.Epoch).add("sender", jsonSender(c.Sender)).
		add("authenticated_data", hx(c.AuthenticatedData)).add("content_type", enumName(c.ContentType, 2, contentTypeNames))
	switch c.ContentType {
	case message.ContentApplication:
		o.add("application_data", hx(c.ApplicationData))
	case message.ContentProposal:
		o.add("proposal", jsonProposal(c.Proposal))
	case message.ContentCommit:
		o.add("commit", jsonCommit(c.Commit))
	}
	return o
}

func jsonAuth(a *message.FramedContentAuthData, ct message.ContentType) *obj {
	o := newObj().add("signature", hx(a.Signature))
	if ct == message.ContentCommit {
		o.add("confirmation_tag", hx(a.ConfirmationTag))
	}
	return o
}

func jsonPrivateMessage(m *message.PrivateMessage) *obj {
	return newObj().add("group_id", hx(m.GroupID)).add("epoch", m.Epoch).
		add("content_type", enumName(m.ContentType, 2, contentTypeNames)).
		add("authenticated_data", hx(m.AuthenticatedData)).
		add("encrypted_sender_data", hx(m.EncryptedSenderData)).add("ciphertext", hx(m.Ciphertext))
}

// RFC 9420, Sections 5.3, 7.1, 7.2 and 7.6.

func jsonCredential(c *message.Credential) *obj {
	o := newObj().add("credential_type", enumName(c.Type, 4, credentialNames))
	switch c.Type {
	case message.CredentialBasic:
		o.add("identity", hx(c.Identity))
		if s, ok := printable(c.Identity); ok {
			o.add("identity_string", s)
		}
	case message.CredentialX509:
		o.add("certificates", list(len(c.Certificates), func(i int) any { return jsonCertificate(c.Certificates[i]) }))
	default:
		o.add("credential_data", hx(c.Data))
	}
	return o
}

// printable returns b as a string when it is valid UTF-8 made of printable
// characters.
func printable(b []byte) (string, bool) {
	if len(b) == 0 || !utf8.Valid(b) {
		return "", false
	}
	for _, r := range string(b) {
		if !unicode.IsPrint(r) {
			return "", false
		}
	}
	return string(b), true
}

// jsonCertificate shows one Certificate.cert_data, with the fields of the
// certificate when crypto/x509 parses it.
func jsonCertificate(der []byte) *obj {
	o := newObj().add("cert_data", hx(der))
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return o.add("parse_error", err.Error())
	}
	return o.add("subject", cert.Subject.String()).add("issuer", cert.Issuer.String()).
		add("not_after", cert.NotAfter.UTC().Format(time.RFC3339))
}

func jsonCapabilities(c *message.Capabilities) *obj {
	suites := list(len(c.CipherSuites), func(i int) any { return jsonSuite(c.CipherSuites[i]) })
	return newObj().add("versions", enumList(c.Versions, 4, versionNames)).add("cipher_suites", suites).
		add("extensions", enumList(c.Extensions, 4, extensionNames)).
		add("proposals", enumList(c.Proposals, 4, proposalNames)).
		add("credentials", enumList(c.Credentials, 4, credentialNames))
}

func jsonLeafNode(ln *message.LeafNode) *obj {
	o := newObj().add("encryption_key", hx(ln.EncryptionKey)).add("signature_key", hx(ln.SignatureKey)).
		add("credential", jsonCredential(&ln.Credential)).add("capabilities", jsonCapabilities(&ln.Capabilities)).
		add("leaf_node_source", enumName(ln.Source, 2, sourceNames))
	switch ln.Source {
	case message.LeafNodeSourceKeyPackage:
		o.add("lifetime", newObj().add("not_before", ln.Lifetime.NotBefore).add("not_after", ln.Lifetime.NotAfter))
	case message.LeafNodeSourceCommit:
		o.add("parent_hash", hx(ln.ParentHash))
	}
	return o.add("extensions", jsonExtensions(ln.Extensions)).add("signature", hx(ln.Signature))
}

func jsonParentNode(p *message.ParentNode) *obj {
	leaves := list(len(p.UnmergedLeaves), func(i int) any { return p.UnmergedLeaves[i] })
	return newObj().add("encryption_key", hx(p.EncryptionKey)).add("parent_hash", hx(p.ParentHash)).add("unmerged_leaves", leaves)
}

// jsonTree renders optional<Node> ratchet_tree<V> (RFC 9420, Section
// 12.4.3.3); a blank node is null, and the array index is the node index.
func jsonTree(rt message.RatchetTree) lazyList {
	return list(len(rt), func(i int) any {
		switch n := rt[i]; {
		case n == nil:
			return nil
		case n.Leaf != nil:
			return newObj().add("node_type", "leaf").add("leaf_node", jsonLeafNode(n.Leaf))
		default:
			return newObj().add("node_type", "parent").add("parent_node", jsonParentNode(n.Parent))
		}
	})
}

func jsonBareTree(rt message.RatchetTree) *obj { return newObj().add("ratchet_tree", jsonTree(rt)) }

func jsonHPKECiphertext(c *message.HPKECiphertext) *obj {
	return newObj().add("kem_output", hx(c.KEMOutput)).add("ciphertext", hx(c.Ciphertext))
}

func jsonUpdatePath(p *message.UpdatePath) *obj {
	nodes := list(len(p.Nodes), func(i int) any {
		n := &p.Nodes[i]
		cts := list(len(n.EncryptedPathSecret), func(j int) any { return jsonHPKECiphertext(&n.EncryptedPathSecret[j]) })
		return newObj().add("encryption_key", hx(n.EncryptionKey)).add("encrypted_path_secret", cts)
	})
	return newObj().add("leaf_node", jsonLeafNode(&p.LeafNode)).add("nodes", nodes)
}

// RFC 9420, Section 7.2 and 13: extensions. The five of Section 17.3 and
// last_resort are decoded; any other type, or a known one whose data does
// not decode, shows its data in hex.

func jsonExtensions(exts []message.Extension) lazyList {
	return list(len(exts), func(i int) any { return jsonExtension(&exts[i]) })
}

func jsonExtension(x *message.Extension) *obj {
	o := newObj().add("extension_type", enumName(x.Type, 4, extensionNames))
	body, err := extensionBody(x)
	if err != nil {
		return o.add("extension_data", hx(x.Data)).add("decode_error", err.Error())
	}
	if body == nil {
		return o.add("extension_data", hx(x.Data))
	}
	o.merge(body)
	return o
}

// extensionBody decodes the data of a known extension; nil, nil for an
// unknown type.
func extensionBody(x *message.Extension) (*obj, error) {
	switch x.Type {
	case message.ExtensionApplicationID:
		var v message.ApplicationID
		if err := message.Unmarshal(x.Data, &v); err != nil {
			return nil, err
		}
		o := newObj().add("application_id", hx(v.ApplicationID))
		if s, ok := printable(v.ApplicationID); ok {
			o.add("application_id_string", s)
		}
		return o, nil
	case message.ExtensionRatchetTree:
		rt, err := message.UnmarshalRatchetTree(x.Data)
		if err != nil {
			return nil, err
		}
		return newObj().add("ratchet_tree", jsonTree(rt)), nil
	case message.ExtensionRequiredCapabilities:
		var v message.RequiredCapabilities
		if err := message.Unmarshal(x.Data, &v); err != nil {
			return nil, err
		}
		return newObj().add("extension_types", enumList(v.Extensions, 4, extensionNames)).
			add("proposal_types", enumList(v.Proposals, 4, proposalNames)).
			add("credential_types", enumList(v.Credentials, 4, credentialNames)), nil
	case message.ExtensionExternalPub:
		var v message.ExternalPub
		if err := message.Unmarshal(x.Data, &v); err != nil {
			return nil, err
		}
		return newObj().add("external_pub", hx(v.ExternalPub)), nil
	case message.ExtensionExternalSenders:
		var v message.ExternalSenders
		if err := message.Unmarshal(x.Data, &v); err != nil {
			return nil, err
		}
		senders := list(len(v), func(i int) any {
			return newObj().add("signature_key", hx(v[i].SignatureKey)).add("credential", jsonCredential(&v[i].Credential))
		})
		return newObj().add("external_senders", senders), nil
	case extLastResort:
		// The last_resort extension has empty data.
		if len(x.Data) != 0 {
			return nil, fmt.Errorf("last_resort carries %d bytes of data, want none", len(x.Data))
		}
		return newObj(), nil
	}
	return nil, nil
}

// RFC 9420, Section 8.1.

func jsonGroupContext(g *message.GroupContext) *obj {
	return newObj().add("version", enumName(g.Version, 4, versionNames)).add("cipher_suite", jsonSuite(g.CipherSuite)).
		add("group_id", hx(g.GroupID)).add("epoch", g.Epoch).add("tree_hash", hx(g.TreeHash)).
		add("confirmed_transcript_hash", hx(g.ConfirmedTranscriptHash)).add("extensions", jsonExtensions(g.Extensions))
}

// RFC 9420, Section 8.4.

func jsonPSKID(p *message.PreSharedKeyID) *obj {
	o := newObj().add("psktype", enumName(p.Type, 2, pskTypeNames))
	switch p.Type {
	case message.PSKExternal:
		o.add("psk_id", hx(p.PSKID))
	case message.PSKResumption:
		o.add("usage", enumName(p.Usage, 2, usageNames)).add("psk_group_id", hx(p.PSKGroupID)).add("psk_epoch", p.PSKEpoch)
	}
	return o.add("psk_nonce", hx(p.Nonce))
}

// RFC 9420, Section 10.

func jsonKeyPackage(kp *message.KeyPackage) *obj {
	o := newObj().add("version", enumName(kp.Version, 4, versionNames)).add("cipher_suite", jsonSuite(kp.CipherSuite)).
		add("init_key", hx(kp.InitKey)).add("leaf_node", jsonLeafNode(&kp.LeafNode)).
		add("extensions", jsonExtensions(kp.Extensions)).add("signature", hx(kp.Signature))
	// KeyPackageRef (RFC 9420, Section 5.2): RefHash over the encoded
	// KeyPackage with the suite's hash, when the suite is one we know.
	if s, err := ciphersuite.Lookup(kp.CipherSuite); err == nil {
		if ref, err := kp.Ref(s); err == nil {
			o.add("key_package_ref", hx(ref))
		}
	}
	return o
}

// RFC 9420, Section 12.1.

func jsonProposal(p *message.Proposal) *obj {
	o := newObj().add("proposal_type", enumName(p.Type, 4, proposalNames))
	o.merge(jsonProposalBody(p))
	return o
}

// jsonProposalBody renders the body of a proposal under the name of its
// type, or, for a type RFC 9420 does not define, its data in hex.
func jsonProposalBody(p *message.Proposal) *obj {
	o := newObj()
	switch p.Type {
	case message.ProposalAdd:
		o.add("add", newObj().add("key_package", jsonKeyPackage(&p.Add.KeyPackage)))
	case message.ProposalUpdate:
		o.add("update", newObj().add("leaf_node", jsonLeafNode(&p.Update.LeafNode)))
	case message.ProposalRemove:
		o.add("remove", newObj().add("removed", p.Remove.Removed))
	case message.ProposalPSK:
		o.add("psk", newObj().add("psk", jsonPSKID(&p.PSK.PSK)))
	case message.ProposalReInit:
		r := p.ReInit
		o.add("reinit", newObj().add("group_id", hx(r.GroupID)).add("version", enumName(r.Version, 4, versionNames)).
			add("cipher_suite", jsonSuite(r.CipherSuite)).add("extensions", jsonExtensions(r.Extensions)))
	case message.ProposalExternalInit:
		o.add("external_init", newObj().add("kem_output", hx(p.ExternalInit.KEMOutput)))
	case message.ProposalGroupContextExtensions:
		o.add("group_context_extensions", newObj().add("extensions", jsonExtensions(p.GroupContextExtensions.Extensions)))
	default:
		o.add("proposal_data", hx(p.Data))
	}
	return o
}

// RFC 9420, Section 12.4.

func jsonCommit(c *message.Commit) *obj {
	props := list(len(c.Proposals), func(i int) any {
		if p := c.Proposals[i]; p.Proposal != nil {
			return newObj().add("type", "proposal").add("proposal", jsonProposal(p.Proposal))
		}
		return newObj().add("type", "reference").add("reference", hx(c.Proposals[i].Reference))
	})
	o := newObj().add("proposals", props)
	if c.Path != nil {
		return o.add("path", jsonUpdatePath(c.Path))
	}
	return o.add("path", nil)
}

// RFC 9420, Section 12.4.3.

func jsonGroupInfo(g *message.GroupInfo) *obj {
	return newObj().add("group_context", jsonGroupContext(&g.GroupContext)).add("extensions", jsonExtensions(g.Extensions)).
		add("confirmation_tag", hx(g.ConfirmationTag)).add("signer", g.Signer).add("signature", hx(g.Signature))
}

func jsonWelcome(w *message.Welcome) *obj {
	secrets := list(len(w.Secrets), func(i int) any {
		s := &w.Secrets[i]
		return newObj().add("new_member", hx(s.NewMember)).add("encrypted_group_secrets", jsonHPKECiphertext(&s.EncryptedGroupSecrets))
	})
	return newObj().add("cipher_suite", jsonSuite(w.CipherSuite)).add("secrets", secrets).
		add("encrypted_group_info", hx(w.EncryptedGroupInfo))
}

func jsonGroupSecrets(g *message.GroupSecrets) *obj {
	o := newObj().add("joiner_secret", hx(g.JoinerSecret))
	if g.PathSecret != nil {
		o.add("path_secret", newObj().add("path_secret", hx(g.PathSecret)))
	} else {
		o.add("path_secret", nil)
	}
	psks := list(len(g.PSKs), func(i int) any { return jsonPSKID(&g.PSKs[i]) })
	return o.add("psks", psks)
}

// jsonWriter writes a value built from *obj, lazyList, hexBytes, strings,
// numbers, booleans and nil as indented JSON (the layout of
// json.MarshalIndent with two spaces), streaming: nothing but the element
// being written is held in memory.
type jsonWriter struct {
	w     *bufio.Writer
	depth int
}

func writeInspectJSON(w io.Writer, v any) error {
	jw := &jsonWriter{w: bufio.NewWriter(w)}
	jw.value(v)
	jw.w.WriteByte('\n')
	return jw.w.Flush()
}

func (jw *jsonWriter) newline() {
	jw.w.WriteByte('\n')
	for range jw.depth {
		jw.w.WriteString("  ")
	}
}

func (jw *jsonWriter) value(v any) {
	switch v := v.(type) {
	case nil:
		jw.w.WriteString("null")
	case *obj:
		if len(v.keys) == 0 {
			jw.w.WriteString("{}")
			return
		}
		jw.w.WriteByte('{')
		jw.depth++
		for i, k := range v.keys {
			if i > 0 {
				jw.w.WriteByte(',')
			}
			jw.newline()
			jw.str(k)
			jw.w.WriteString(": ")
			jw.value(v.vals[i])
		}
		jw.depth--
		jw.newline()
		jw.w.WriteByte('}')
	case lazyList:
		if v.n == 0 {
			jw.w.WriteString("[]")
			return
		}
		jw.w.WriteByte('[')
		jw.depth++
		for i := range v.n {
			if i > 0 {
				jw.w.WriteByte(',')
			}
			jw.newline()
			jw.value(v.elem(i))
		}
		jw.depth--
		jw.newline()
		jw.w.WriteByte(']')
	case hexBytes:
		jw.w.WriteByte('"')
		var buf [256]byte
		for b := []byte(v); len(b) > 0; {
			n := min(len(b), len(buf)/2)
			hex.Encode(buf[:], b[:n])
			jw.w.Write(buf[:2*n])
			b = b[n:]
		}
		jw.w.WriteByte('"')
	case string:
		jw.str(v)
	case bool:
		jw.w.WriteString(strconv.FormatBool(v))
	case uint64:
		jw.w.WriteString(strconv.FormatUint(v, 10))
	case uint32:
		jw.w.WriteString(strconv.FormatUint(uint64(v), 10))
	case uint16:
		jw.w.WriteString(strconv.FormatUint(uint64(v), 10))
	default:
		panic(fmt.Sprintf("mls inspect: no JSON form for %T", v))
	}
}

func (jw *jsonWriter) str(s string) {
	b, _ := json.Marshal(s) // a string always marshals
	jw.w.Write(b)
}
