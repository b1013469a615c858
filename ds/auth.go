package ds

// AuthLabel is the label under which a client signs a challenge with
// SignWithLabel (RFC 9420, Section 5.1.2): the signature is over
// SignContent{"MLS 1.0 " + AuthLabel, AuthContent(challenge, serverName)},
// so it can never be mistaken for a signature over an MLS object.
const AuthLabel = "mlsd auth"

// AuthContent is the content a client signs to answer a challenge: the
// challenge followed by the server's name, so that a signature collected by
// one server cannot be replayed to another.
func AuthContent(challenge []byte, serverName string) []byte {
	b := make([]byte, 0, len(challenge)+len(serverName))
	b = append(b, challenge...)
	return append(b, serverName...)
}
