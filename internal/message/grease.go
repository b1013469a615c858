package message

// IsGREASE reports whether v is one of the values RFC 9420, Section 13.5
// reserves for GREASE in every MLS registry: 0x0A0A, 0x1A1A, ... 0xEAEA
// (0xFAFA is private use and not one of them).
func IsGREASE(v uint16) bool {
	return v&0x0F0F == 0x0A0A && v>>12 == (v>>4)&0xF && v>>12 <= 0xE
}

// GREASEValues lists the fifteen GREASE values of RFC 9420, Section 13.5.
func GREASEValues() []uint16 {
	out := make([]uint16, 0, 15)
	for hi := uint16(0); hi <= 0xE; hi++ {
		out = append(out, hi<<12|0x0A00|hi<<4|0x0A)
	}
	return out
}

// Supports reports whether a capabilities list advertises v as really
// supported. A GREASE value never is: RFC 9420, Section 13.5 requires a
// client to represent its own capabilities without GREASE values, so a
// GREASE value in a list is one the sender added to be ignored, and no
// client implements it. Checks of required_capabilities, of proposal types
// and of group context extensions use this rather than a plain membership
// test, so that GREASE never makes them pass.
func Supports[T ~uint16](list []T, v T) bool {
	if IsGREASE(uint16(v)) {
		return false
	}
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}
