package message

import (
	"bytes"
	"errors"
	"runtime"
	"testing"

	"github.com/mlskit/mls/internal/wire"
)

// TestUnknownEnumsRejected feeds values the RFC gives no extension point
// for; each must fail with ErrUnknownValue inside a *wire.Error naming the
// field.
func TestUnknownEnumsRejected(t *testing.T) {
	tests := []struct {
		name, hex, field string
		fresh            func() Decodable
	}{
		{"sender type 0", "00 00000001", "sender_type", func() Decodable { return new(Sender) }},
		{"sender type 5", "05 00000001", "sender_type", func() Decodable { return new(Sender) }},
		{"content type 0", "00 0000000000000000 04 00 00", "content_type", func() Decodable { return new(FramedContent) }},
		{"content type 4", "00 0000000000000000 04 00 04 00", "content_type", func() Decodable { return new(FramedContent) }},
		{"private content type 9", "00 0000000000000000 09 00 00 00", "content_type", func() Decodable { return new(PrivateMessage) }},
		{"node type 0", "00 00", "node_type", func() Decodable { return new(Node) }},
		{"node type 3", "03 00", "node_type", func() Decodable { return new(Node) }},
		{"node type 3 in tree", "03 01 03 00", "node_type", func() Decodable { return new(RatchetTree) }},
		{"leaf node source 0", "0101 0102 0001 00 00 00 00 00 00 00 00 00", "leaf_node_source", func() Decodable { return new(LeafNode) }},
		{"leaf node source 4", "0101 0102 0001 00 00 00 00 00 00 04 00 00", "leaf_node_source", func() Decodable { return new(LeafNode) }},
		{"psk type 0", "00 00 00", "psktype", func() Decodable { return new(PreSharedKeyID) }},
		{"psk type 3", "03 01 6b 00", "psktype", func() Decodable { return new(PreSharedKeyID) }},
		{"proposal or ref type 0", "00 00", "type", func() Decodable { return new(ProposalOrRef) }},
		{"proposal or ref type 3", "03 01ff", "type", func() Decodable { return new(ProposalOrRef) }},
		{"proposal or ref in commit", "03 03 01ff 00", "type", func() Decodable { return new(Commit) }},
		{"wire format 0", "0001 0000", "wire_format", func() Decodable { return new(MLSMessage) }},
		{"wire format 6", "0001 0006 00", "wire_format", func() Decodable { return new(MLSMessage) }},
		{"wire format GREASE", "0001 0a0a 00", "wire_format", func() Decodable { return new(MLSMessage) }},
		{"authenticated content wire format 3", "0003 00 0000000000000000 04 00 01 00 00", "wire_format", func() Decodable { return new(AuthenticatedContent) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Unmarshal(unhex(t, tt.hex), tt.fresh())
			if !errors.Is(err, ErrUnknownValue) || !errors.Is(err, wire.ErrInvalidValue) {
				t.Fatalf("got %v, want ErrUnknownValue", err)
			}
			var we *wire.Error
			if !errors.As(err, &we) || we.Field != tt.field {
				t.Fatalf("error %v does not name field %q", err, tt.field)
			}
		})
	}
}

func TestUnsupportedVersion(t *testing.T) {
	for _, h := range []string{"0000 0005", "0002 0005", "0a0a 0001"} {
		_, err := UnmarshalMLSMessage(unhex(t, h))
		if !errors.Is(err, ErrUnsupportedVersion) {
			t.Errorf("%s: got %v, want ErrUnsupportedVersion", h, err)
		}
	}
}

// TestUnknownTypesPreserved checks that extensions, proposals and
// credentials of types RFC 9420 does not define, GREASE values among them
// (Section 13.5), decode and re-encode byte for byte.
func TestUnknownTypesPreserved(t *testing.T) {
	tests := []struct {
		name  string
		hex   string
		fresh func() Decodable
		check func(t *testing.T, v Decodable)
	}{
		{"extension", "fafa 03 010203", func() Decodable { return new(Extension) }, func(t *testing.T, v Decodable) {
			x := v.(*Extension)
			if x.Type != 0xFAFA || !bytes.Equal(x.Data, []byte{1, 2, 3}) {
				t.Errorf("got %+v", x)
			}
		}},
		{"proposal", "7a7a 02 aabb", func() Decodable { return new(Proposal) }, func(t *testing.T, v Decodable) {
			p := v.(*Proposal)
			if p.Type != 0x7A7A || !bytes.Equal(p.Data, []byte{0xaa, 0xbb}) || p.Add != nil {
				t.Errorf("got %+v", p)
			}
		}},
		{"credential", "eaea 01 00", func() Decodable { return new(Credential) }, func(t *testing.T, v Decodable) {
			c := v.(*Credential)
			if c.Type != 0xEAEA || !bytes.Equal(c.Data, []byte{0}) || c.Identity != nil {
				t.Errorf("got %+v", c)
			}
		}},
		{"capabilities with GREASE", "02 0001 06 0001 0a0a 1a1a 02 2a2a 02 3a3a 04 0001 4a4a", func() Decodable { return new(Capabilities) },
			func(t *testing.T, v Decodable) {
				c := v.(*Capabilities)
				if len(c.CipherSuites) != 3 || c.CipherSuites[1] != 0x0A0A || c.Extensions[0] != 0x2A2A ||
					c.Proposals[0] != 0x3A3A || c.Credentials[1] != 0x4A4A {
					t.Errorf("got %+v", c)
				}
			}},
		{"GREASE extension in a GroupContextExtensions proposal", "0007 0a 0a0a 00 0001 01 61 bbbb 00", func() Decodable { return new(Proposal) },
			func(t *testing.T, v Decodable) {
				g := v.(*Proposal).GroupContextExtensions
				if g == nil || len(g.Extensions) != 3 || g.Extensions[0].Type != 0x0A0A || g.Extensions[2].Type != 0xBBBB {
					t.Errorf("got %+v", v)
				}
			}},
		{"custom proposal in a commit", "07 01 ff00 03 010203 00", func() Decodable { return new(Commit) }, func(t *testing.T, v Decodable) {
			c := v.(*Commit)
			if len(c.Proposals) != 1 || c.Proposals[0].Proposal == nil || c.Proposals[0].Proposal.Type != 0xFF00 {
				t.Errorf("got %+v", c)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := unhex(t, tt.hex)
			v := tt.fresh()
			if err := Unmarshal(in, v); err != nil {
				t.Fatal(err)
			}
			tt.check(t, v)
			if out := MustMarshal(v.(Encodable)); !bytes.Equal(out, in) {
				t.Fatalf("re-encoding: got %x, want %x", out, in)
			}
		})
	}
}

// TestDuplicateExtensionsRejected covers RFC 9420, Section 13.4 in every
// list of extensions, in both the short-list and the bitmap path.
func TestDuplicateExtensionsRejected(t *testing.T) {
	list := func(types ...uint16) []byte {
		e := wire.NewEncoder(nil)
		exts := make([]Extension, len(types))
		for i, ty := range types {
			exts[i] = Extension{Type: ExtensionType(ty), Data: []byte{}}
		}
		encodeExtensions(e, exts)
		return e.MustBytes()
	}
	many := make([]uint16, 100)
	for i := range many {
		many[i] = uint16(1000 + i)
	}
	manyDup := append(append([]uint16{}, many...), 1050)

	withList := map[string]func(l []byte) ([]byte, Decodable){
		"GroupContext": func(l []byte) ([]byte, Decodable) {
			return append(unhex(t, "0001 0001 00 0000000000000000 00 00"), l...), new(GroupContext)
		},
		"GroupContextExtensions": func(l []byte) ([]byte, Decodable) { return l, new(GroupContextExtensionsProposal) },
		"ReInit": func(l []byte) ([]byte, Decodable) {
			return append(unhex(t, "00 0001 0001"), l...), new(ReInitProposal)
		},
		"LeafNode": func(l []byte) ([]byte, Decodable) {
			return append(append(unhex(t, "0101 0102 0001 00 00 00 00 00 00 02"), l...), 0), new(LeafNode)
		},
		"KeyPackage": func(l []byte) ([]byte, Decodable) {
			return append(append(unhex(t, "0001 0001 0103 0101 0102 0001 00 00 00 00 00 00 02 00 00"), l...), 0), new(KeyPackage)
		},
		"GroupInfo": func(l []byte) ([]byte, Decodable) {
			return append(append(unhex(t, "0001 0001 00 0000000000000000 00 00 00"), l...), unhex(t, "00 00000000 00")...), new(GroupInfo)
		},
	}
	for name, build := range withList {
		for _, tc := range []struct {
			name  string
			types []uint16
			ok    bool
		}{
			{"distinct", []uint16{1, 5, 0x0A0A}, true},
			{"pair", []uint16{1, 5, 1}, false},
			{"GREASE pair", []uint16{0x0A0A, 0x0A0A}, false},
			{"100 distinct", many, true},
			{"101 with duplicate", manyDup, false},
		} {
			t.Run(name+"/"+tc.name, func(t *testing.T) {
				in, v := build(list(tc.types...))
				err := Unmarshal(in, v)
				if tc.ok && err != nil {
					t.Fatalf("distinct types rejected: %v", err)
				}
				if !tc.ok && !errors.Is(err, ErrDuplicateExtension) {
					t.Fatalf("got %v, want ErrDuplicateExtension", err)
				}
			})
		}
	}
	if err := CheckExtensions([]Extension{{Type: 3}, {Type: 4}, {Type: 3}}); !errors.Is(err, ErrDuplicateExtension) {
		t.Errorf("CheckExtensions: got %v", err)
	}
	if err := CheckExtensions(sampleExtensions()); err != nil {
		t.Errorf("CheckExtensions on distinct types: %v", err)
	}
}

// TestBadOptionalRejected: an optional<T> presence octet other than 0 or 1
// (RFC 9420, Section 2.1.1).
func TestBadOptionalRejected(t *testing.T) {
	tests := []struct {
		name, hex string
		fresh     func() Decodable
	}{
		{"Commit.path", "00 02", func() Decodable { return new(Commit) }},
		{"GroupSecrets.path_secret", "01 01 02 01 02 00", func() Decodable { return new(GroupSecrets) }},
		{"ratchet_tree entry", "01 ff", func() Decodable { return new(RatchetTree) }},
	}
	for _, tt := range tests {
		err := Unmarshal(unhex(t, tt.hex), tt.fresh())
		if !errors.Is(err, wire.ErrInvalidOptional) {
			t.Errorf("%s: got %v, want ErrInvalidOptional", tt.name, err)
		}
	}
}

// TestBadLengthsRejected covers length headers that lie.
func TestBadLengthsRejected(t *testing.T) {
	tests := []struct {
		name, hex string
		fresh     func() Decodable
		want      error
	}{
		{"opaque longer than input", "0001 06 616c696365", func() Decodable { return new(Credential) }, wire.ErrTruncated},
		{"opaque shorter than content", "0001 04 616c696365", func() Decodable { return new(Credential) }, wire.ErrTrailingData},
		{"odd-length uint16 vector", "03 0001 00 00 00 00 00", func() Decodable { return new(Capabilities) }, wire.ErrTruncated},
		{"uint32 vector cut", "01aa 00 06 00000001 0000", func() Decodable { return new(ParentNode) }, wire.ErrTruncated},
		{"element overruns its vector", "04 0001 03 617070", func() Decodable { return new(GroupContextExtensionsProposal) }, wire.ErrTruncated},
		{"non-minimal varint", "0001 4005 616c696365", func() Decodable { return new(Credential) }, wire.ErrInvalidVarint},
		{"reserved varint prefix", "0001 c0000005 616c696365", func() Decodable { return new(Credential) }, wire.ErrInvalidVarint},
		{"tree vector cuts a node", "05 01 02 01aa 00 00 00", func() Decodable { return new(RatchetTree) }, wire.ErrTruncated},
		{"tree vector one byte long", "08 01 02 01aa 00 00 00", func() Decodable { return new(RatchetTree) }, wire.ErrTruncated},
		{"1 GiB secrets vector", "0001 0003 0001 bfffffff", func() Decodable { return new(MLSMessage) }, wire.ErrTooLarge},
		{"256 MiB - 1 tree vector", "8fffffff 00", func() Decodable { return new(RatchetTree) }, wire.ErrTruncated},
	}
	for _, tt := range tests {
		err := Unmarshal(unhex(t, tt.hex), tt.fresh())
		if !errors.Is(err, tt.want) {
			t.Errorf("%s: got %v, want %v", tt.name, err, tt.want)
		}
	}
}

// TestHugeLengthNoAllocation checks that a header claiming a gigabyte is
// refused without allocating anything near that size.
func TestHugeLengthNoAllocation(t *testing.T) {
	inputs := [][]byte{
		unhex(t, "0001 0003 0001 bfffffff 00"),                         // Welcome.secrets: 2^30-1 bytes
		unhex(t, "0001 0005 0001 0001 8fffffff"),                       // KeyPackage.init_key: 2^28-1 bytes
		unhex(t, "bfffffff 01 01"),                                     // ratchet_tree
		unhex(t, "0001 0004 0001 0001 bfffffff"),                       // GroupInfo group_id
		unhex(t, "0001 0001 00 0000000000000000 01 00000000 bfffffff"), // PublicMessage authenticated_data
	}
	for _, in := range inputs {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		for i := 0; i < 10; i++ {
			if _, err := UnmarshalMLSMessage(in); err == nil {
				t.Fatalf("%x: decoded", in)
			}
			if _, err := UnmarshalRatchetTree(in); err == nil {
				t.Fatalf("%x: decoded as a tree", in)
			}
		}
		runtime.ReadMemStats(&after)
		if d := after.TotalAlloc - before.TotalAlloc; d > 1<<20 {
			t.Errorf("%x: %d bytes allocated for 20 failed decodings", in, d)
		}
	}
}
