package message

import (
	"bytes"
	"errors"
	"reflect"
	"testing"

	"github.com/mlskit/mls/internal/wire"
)

func TestExtensionViews(t *testing.T) {
	tree := sampleRatchetTree()
	bodies := []ExtensionBody{
		&ApplicationID{ApplicationID: []byte("id")},
		&tree,
		&RequiredCapabilities{Extensions: []ExtensionType{0xFF00}, Proposals: []ProposalType{0xFF01}, Credentials: []CredentialType{CredentialX509}},
		&ExternalPub{ExternalPub: b(32, 1)},
		&ExternalSenders{{SignatureKey: b(32, 2), Credential: Credential{Type: CredentialBasic, Identity: []byte("ds")}}},
	}
	wantTypes := []ExtensionType{1, 2, 3, 4, 5}
	var exts []Extension
	for i, body := range bodies {
		x, err := NewExtension(body)
		if err != nil {
			t.Fatal(err)
		}
		if x.Type != wantTypes[i] {
			t.Fatalf("%T: type %d, want %d", body, x.Type, wantTypes[i])
		}
		exts = SetExtension(exts, x)
	}
	if len(exts) != 5 {
		t.Fatalf("%d extensions, want 5", len(exts))
	}
	fresh := []ExtensionBody{new(ApplicationID), new(RatchetTree), new(RequiredCapabilities), new(ExternalPub), new(ExternalSenders)}
	for i, body := range fresh {
		ok, err := ParseExtension(exts, body)
		if err != nil || !ok {
			t.Fatalf("%T: ok=%v err=%v", body, ok, err)
		}
		if !reflect.DeepEqual(body, bodies[i]) {
			t.Errorf("%T: got %+v, want %+v", body, body, bodies[i])
		}
	}

	// Hand-written required_capabilities (RFC 9420, Section 11.1).
	var rc RequiredCapabilities
	ok, err := ParseExtension([]Extension{{Type: 3, Data: unhex(t, "02 0005 00 02 0001")}}, &rc)
	if err != nil || !ok || len(rc.Extensions) != 1 || rc.Extensions[0] != ExtensionExternalSenders ||
		len(rc.Proposals) != 0 || len(rc.Credentials) != 1 || rc.Credentials[0] != CredentialBasic {
		t.Fatalf("required_capabilities: ok=%v err=%v %+v", ok, err, rc)
	}

	// SetExtension replaces in place.
	exts = SetExtension(exts, Extension{Type: ExtensionExternalPub, Data: unhex(t, "01 aa")})
	var ep ExternalPub
	if ok, err := ParseExtension(exts, &ep); !ok || err != nil || !bytes.Equal(ep.ExternalPub, []byte{0xaa}) || len(exts) != 5 {
		t.Fatalf("after SetExtension: %v %v %x (%d extensions)", ok, err, ep.ExternalPub, len(exts))
	}

	// Absent.
	if ok, err := ParseExtension(exts[:1], &ep); ok || err != nil {
		t.Fatalf("absent extension: ok=%v err=%v", ok, err)
	}
	// Malformed data, trailing data, duplicates.
	if _, err := ParseExtension([]Extension{{Type: 4, Data: unhex(t, "05 aa")}}, &ep); !errors.Is(err, wire.ErrTruncated) {
		t.Fatalf("truncated external_pub: %v", err)
	}
	if _, err := ParseExtension([]Extension{{Type: 4, Data: unhex(t, "01 aa bb")}}, &ep); !errors.Is(err, wire.ErrTrailingData) {
		t.Fatalf("external_pub with trailing data: %v", err)
	}
	if _, err := ParseExtension([]Extension{{Type: 4, Data: unhex(t, "00")}, {Type: 4, Data: unhex(t, "00")}}, &ep); !errors.Is(err, ErrDuplicateExtension) {
		t.Fatalf("duplicate external_pub: %v", err)
	}
	if x, ok := FindExtension(exts, 0x0A0A); ok || x != nil {
		t.Fatal("found an extension that is not there")
	}
}
