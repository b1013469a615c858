package message

import "testing"

// TestIsGREASE checks IsGREASE and GREASEValues against the list of
// RFC 9420, Section 13.5, written out, over every uint16.
func TestIsGREASE(t *testing.T) {
	want := map[uint16]bool{0x0A0A: true, 0x1A1A: true, 0x2A2A: true, 0x3A3A: true, 0x4A4A: true, 0x5A5A: true, 0x6A6A: true,
		0x7A7A: true, 0x8A8A: true, 0x9A9A: true, 0xAAAA: true, 0xBABA: true, 0xCACA: true, 0xDADA: true, 0xEAEA: true}
	for v := 0; v <= 0xFFFF; v++ {
		if IsGREASE(uint16(v)) != want[uint16(v)] {
			t.Fatalf("IsGREASE(0x%04x) = %v", v, !want[uint16(v)])
		}
	}
	vals := GREASEValues()
	if len(vals) != 15 {
		t.Fatalf("%d GREASE values", len(vals))
	}
	for _, v := range vals {
		if !want[v] {
			t.Fatalf("GREASEValues has 0x%04x", v)
		}
	}
	if IsGREASE(0xFAFA) {
		t.Fatal("0xFAFA is private use, not GREASE")
	}
}

// TestSupports: a listed value is supported, a GREASE value never, even
// when listed.
func TestSupports(t *testing.T) {
	list := []ExtensionType{0x0A0A, 0xF001}
	if !Supports(list, 0xF001) || Supports(list, 0x0A0A) || Supports(list, 0xF002) || Supports(nil, ExtensionType(0xF001)) {
		t.Fatal("Supports disagrees with its contract")
	}
}
