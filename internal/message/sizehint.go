package message

// Size hints size the buffer Marshal encodes into, so that a large message
// (a Welcome or GroupInfo carrying the ratchet tree, a commit whose
// UpdatePath encrypts to every member of a fresh tree) is written once
// instead of being copied each time a growing buffer is reallocated. A
// hint is an estimate that only needs to be close to, and preferably above,
// the encoded size; each costs O(number of fields) and no encoding.

// sizeHinter is a value that can estimate its encoded size.
type sizeHinter interface{ sizeHint() int }

// minHint is the hint below which Marshal lets the buffer grow.
const minHint = 1024

func (m *MLSMessage) sizeHint() int {
	switch {
	case m.GroupInfo != nil:
		return 4 + m.GroupInfo.sizeHint()
	case m.Welcome != nil:
		return 4 + m.Welcome.sizeHint()
	case m.PublicMessage != nil:
		return 4 + m.PublicMessage.sizeHint()
	case m.PrivateMessage != nil:
		p := m.PrivateMessage
		return 64 + len(p.GroupID) + len(p.AuthenticatedData) + len(p.EncryptedSenderData) + len(p.Ciphertext)
	}
	return 0
}

func (w *Welcome) sizeHint() int {
	n := 16 + len(w.EncryptedGroupInfo)
	for i := range w.Secrets {
		s := &w.Secrets[i]
		n += 12 + len(s.NewMember) + len(s.EncryptedGroupSecrets.KEMOutput) + len(s.EncryptedGroupSecrets.Ciphertext)
	}
	return n
}

func (p *PublicMessage) sizeHint() int {
	c := &p.Content
	n := 256 + len(c.GroupID) + len(c.AuthenticatedData) + len(c.ApplicationData) + len(p.Auth.Signature) + len(p.Auth.ConfirmationTag) + len(p.MembershipTag)
	if c.Commit != nil && c.Commit.Path != nil {
		n += 64 * len(c.Commit.Proposals)
		path := c.Commit.Path
		n += 1024 + len(path.LeafNode.Signature) + len(path.LeafNode.Credential.Identity)
		for _, x := range path.LeafNode.Extensions {
			n += 8 + len(x.Data)
		}
		for i := range path.Nodes {
			pn := &path.Nodes[i]
			n += 8 + len(pn.EncryptionKey)
			for j := range pn.EncryptedPathSecret {
				ct := &pn.EncryptedPathSecret[j]
				n += 8 + len(ct.KEMOutput) + len(ct.Ciphertext)
			}
		}
	}
	return n
}
