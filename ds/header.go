package ds

import (
	"encoding/binary"
)

// Content types of RFC 9420, Section 6.
const (
	contentApplication = 1
	contentProposal    = 2
	contentCommit      = 3
)

// privateHeader reads the clear header of an MLSMessage holding a
// PrivateMessage (RFC 9420, Section 6.3): group_id, epoch and
// content_type, which is all a delivery service learns of an encrypted
// message and all it needs to order it (RFC 9750, Section 5.2.1, "the DS can
// rely on the epoch and content_type fields"). The message must already
// have been parsed by mls.ParseMessage; ok is false when b is not such a
// message.
//
//	struct {
//	    ProtocolVersion version;      // uint16
//	    WireFormat wire_format;       // uint16, 2 = mls_private_message
//	    opaque group_id<V>;
//	    uint64 epoch;
//	    ContentType content_type;     // uint8
//	    ...
//	} MLSMessage;
func privateHeader(b []byte) (groupID []byte, epoch uint64, contentType uint8, ok bool) {
	if len(b) < 4 || binary.BigEndian.Uint16(b[2:4]) != 2 {
		return nil, 0, 0, false
	}
	b = b[4:]
	n, l, ok := varint(b)
	if !ok || uint64(len(b)-l) < n {
		return nil, 0, 0, false
	}
	groupID, b = b[l:l+int(n)], b[l+int(n):]
	if len(b) < 9 {
		return nil, 0, 0, false
	}
	return groupID, binary.BigEndian.Uint64(b[:8]), b[8], true
}

// Sender types of RFC 9420, Section 6.
const (
	senderMember            = 1
	senderExternal          = 2
	senderNewMemberProposal = 3
	senderNewMemberCommit   = 4
)

// publicSenderType reads the sender type of an MLSMessage holding a
// PublicMessage (RFC 9420, Section 6.2: wire format 1, then the
// FramedContent's group_id<V>, epoch and sender), so that a post by a
// non-member can be refused before any signature is checked. The message
// must already have been parsed by mls.ParseMessage.
func publicSenderType(b []byte) (uint8, bool) {
	if len(b) < 4 || binary.BigEndian.Uint16(b[2:4]) != 1 {
		return 0, false
	}
	b = b[4:]
	n, l, ok := varint(b)
	if !ok || uint64(len(b)-l) < n {
		return 0, false
	}
	b = b[l+int(n):]
	if len(b) < 9 {
		return 0, false
	}
	return b[8], true
}

// varint decodes the variable-length integer of RFC 9420, Section 2.1.2,
// returning the value and its encoded length.
func varint(b []byte) (v uint64, n int, ok bool) {
	if len(b) == 0 {
		return 0, 0, false
	}
	switch b[0] >> 6 {
	case 0:
		return uint64(b[0]), 1, true
	case 1:
		if len(b) < 2 {
			return 0, 0, false
		}
		return uint64(binary.BigEndian.Uint16(b[:2]) & 0x3fff), 2, true
	case 2:
		if len(b) < 4 {
			return 0, 0, false
		}
		return uint64(binary.BigEndian.Uint32(b[:4]) & 0x3fffffff), 4, true
	}
	return 0, 0, false
}
