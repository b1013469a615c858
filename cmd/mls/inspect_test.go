package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash"
	"math/big"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	mls "github.com/mlskit/mls"
	"github.com/mlskit/mls/credential"
	"github.com/mlskit/mls/internal/fuzzcorpus"
	"github.com/mlskit/mls/internal/vectors"
	"github.com/mlskit/mls/storage/memory"
)

// inspect runs "mls inspect args..." with stdin as standard input.
func inspect(stdin []byte, args ...string) (status int, stdout, stderr string) {
	var out, errb bytes.Buffer
	status = runInspect(args, bytes.NewReader(stdin), &out, &errb)
	return status, out.String(), errb.String()
}

// splitOutput parses the JSON object at the start of out and returns it
// with the text after it (the tree text, if any).
func splitOutput(t *testing.T, out string) (map[string]any, string) {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(out))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("output does not start with a JSON object: %v\n%.2000s", err, out)
	}
	return m, out[dec.InputOffset():]
}

// at follows a path of object keys and array indices ("0") in a decoded
// JSON value.
func at(v any, path ...string) (any, bool) {
	for _, p := range path {
		switch x := v.(type) {
		case map[string]any:
			var ok bool
			if v, ok = x[p]; !ok {
				return nil, false
			}
		case []any:
			i, err := strconv.Atoi(p)
			if err != nil || i < 0 || i >= len(x) {
				return nil, false
			}
			v = x[i]
		default:
			return nil, false
		}
	}
	return v, true
}

func mustAt(t *testing.T, v any, path ...string) any {
	t.Helper()
	x, ok := at(v, path...)
	if !ok {
		t.Fatalf("no %s in %v", strings.Join(path, "."), v)
	}
	return x
}

// keysOf returns the sorted keys of the object at path.
func keysOf(v any, path ...string) []string {
	x, _ := at(v, path...)
	m, _ := x.(map[string]any)
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func sorted(s ...string) []string { slices.Sort(s); return s }

// refHash computes RefHash(label, value) of RFC 9420, Section 5.2 by hand,
// independently of the library: Hash(opaque label<V> || opaque value<V>).
func refHash(h hash.Hash, label string, value []byte) []byte {
	varint := func(n int) []byte {
		switch {
		case n < 1<<6:
			return []byte{byte(n)}
		case n < 1<<14:
			return []byte{0x40 | byte(n>>8), byte(n)}
		default:
			return []byte{0x80 | byte(n>>24), byte(n >> 16), byte(n >> 8), byte(n)}
		}
	}
	h.Write(varint(len(label)))
	h.Write([]byte(label))
	h.Write(varint(len(value)))
	h.Write(value)
	return h.Sum(nil)
}

// suiteHash is the hash of each RFC 9420 cipher suite (Section 17.1).
func suiteHash(id int) hash.Hash {
	switch id {
	case 1, 2, 3:
		return sha256.New()
	case 4, 5, 6:
		return sha512.New()
	case 7:
		return sha512.New384()
	}
	return nil
}

// messageExpectation says how to inspect one field of messages.json and
// what the JSON must hold.
type messageExpectation struct {
	field string
	args  []string
	check func(t *testing.T, m map[string]any, text string, b []byte)
}

func wantKeys(t *testing.T, m any, want []string, path ...string) {
	t.Helper()
	if got := keysOf(m, path...); !slices.Equal(got, sorted(want...)) {
		t.Errorf("%s has keys %v, want %v", strings.Join(append([]string{"<top>"}, path...), "."), got, sorted(want...))
	}
}

func wantValue(t *testing.T, m any, want any, path ...string) {
	t.Helper()
	got, ok := at(m, path...)
	if !ok || fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("%s = %v, want %v", strings.Join(path, "."), got, want)
	}
}

var top = []string{"structure", "encoding"}

func mlsMessageExpect(field, wireFormat, body string, bodyKeys []string, more func(t *testing.T, m map[string]any, b []byte)) messageExpectation {
	return messageExpectation{field: field, check: func(t *testing.T, m map[string]any, text string, b []byte) {
		wantKeys(t, m, append(slices.Clone(top), "version", "wire_format", body))
		wantValue(t, m, "mlsmessage", "structure")
		wantValue(t, m, "mls10", "version")
		wantValue(t, m, wireFormat, "wire_format")
		if bodyKeys != nil {
			wantKeys(t, m, bodyKeys, body)
		}
		if more != nil {
			more(t, m, b)
		}
	}}
}

func publicMessageExpect(field, contentType string) messageExpectation {
	return mlsMessageExpect(field, "mls_public_message", "public_message", nil, func(t *testing.T, m map[string]any, b []byte) {
		pm := mustAt(t, m, "public_message")
		wantValue(t, pm, contentType, "content", "content_type")
		body := contentType
		if body == "application" {
			body = "application_data"
		}
		wantKeys(t, pm, []string{"group_id", "epoch", "sender", "authenticated_data", "content_type", body}, "content")
		if _, ok := at(pm, "content", "sender", "sender_type"); !ok {
			t.Errorf("no sender_type in %v", pm)
		}
		authKeys := []string{"signature"}
		if contentType == "commit" {
			authKeys = append(authKeys, "confirmation_tag")
			wantKeys(t, pm, []string{"proposals", "path"}, "content", "commit")
		}
		wantKeys(t, pm, authKeys, "auth")
		want := []string{"content", "auth"}
		if st, _ := at(pm, "content", "sender", "sender_type"); st == "member" {
			want = append(want, "membership_tag")
			if _, ok := at(pm, "content", "sender", "leaf_index"); !ok {
				t.Errorf("member sender without leaf_index")
			}
		}
		wantKeys(t, pm, want)
	})
}

// bodyExpect is a proposal body or other structure read with -type.
func bodyExpect(field, typ string, keys []string, more func(t *testing.T, m map[string]any)) messageExpectation {
	return messageExpectation{field: field, args: []string{"-type", typ}, check: func(t *testing.T, m map[string]any, text string, b []byte) {
		wantKeys(t, m, append(slices.Clone(top), keys...))
		wantValue(t, m, typ, "structure")
		if more != nil {
			more(t, m)
		}
	}}
}

var messageExpectations = []messageExpectation{
	mlsMessageExpect("mls_welcome", "mls_welcome", "welcome", []string{"cipher_suite", "secrets", "encrypted_group_info"}, func(t *testing.T, m map[string]any, b []byte) {
		wantKeys(t, m, []string{"id", "name"}, "welcome", "cipher_suite")
		if s, ok := at(m, "welcome", "secrets", "0"); ok {
			wantKeys(t, s, []string{"new_member", "encrypted_group_secrets"})
			wantKeys(t, s, []string{"kem_output", "ciphertext"}, "encrypted_group_secrets")
		}
	}),
	mlsMessageExpect("mls_group_info", "mls_group_info", "group_info", []string{"group_context", "extensions", "confirmation_tag", "signer", "signature"}, func(t *testing.T, m map[string]any, b []byte) {
		wantKeys(t, m, []string{"version", "cipher_suite", "group_id", "epoch", "tree_hash", "confirmed_transcript_hash", "extensions"}, "group_info", "group_context")
	}),
	mlsMessageExpect("mls_key_package", "mls_key_package", "key_package", []string{"version", "cipher_suite", "init_key", "leaf_node", "extensions", "signature", "key_package_ref"}, func(t *testing.T, m map[string]any, b []byte) {
		kp := mustAt(t, m, "key_package")
		wantKeys(t, kp, []string{"encryption_key", "signature_key", "credential", "capabilities", "leaf_node_source", "lifetime", "extensions", "signature"}, "leaf_node")
		wantKeys(t, kp, []string{"not_before", "not_after"}, "leaf_node", "lifetime")
		wantValue(t, kp, "key_package", "leaf_node", "leaf_node_source")
		id, _ := strconv.Atoi(fmt.Sprint(mustAt(t, kp, "cipher_suite", "id")))
		// The KeyPackage is the MLSMessage after version and wire_format.
		want := hex.EncodeToString(refHash(suiteHash(id), "MLS 1.0 KeyPackage Reference", b[4:]))
		wantValue(t, kp, want, "key_package_ref")
	}),
	{field: "ratchet_tree", args: []string{"-type", "ratchettree"}, check: func(t *testing.T, m map[string]any, text string, b []byte) {
		wantKeys(t, m, append(slices.Clone(top), "ratchet_tree"))
		nodes, _ := mustAt(t, m, "ratchet_tree").([]any)
		if !strings.HasPrefix(text, fmt.Sprintf("\n\nratchet tree: %d nodes, ", len(nodes))) {
			t.Errorf("tree text does not follow the JSON: %.300q", text)
		}
		if got := strings.Count(text, "\nnode "); got != len(nodes) {
			t.Errorf("tree text has %d node lines, want %d", got, len(nodes))
		}
		for i, n := range nodes {
			if n == nil {
				continue
			}
			typ := fmt.Sprint(mustAt(t, n, "node_type"))
			if (i%2 == 0) != (typ == "leaf") {
				t.Errorf("node %d is a %s", i, typ)
			}
			wantKeys(t, n, []string{"node_type", typ + "_node"})
		}
	}},
	bodyExpect("group_secrets", "groupsecrets", []string{"joiner_secret", "path_secret", "psks"}, nil),
	bodyExpect("add_proposal", "add", []string{"add"}, func(t *testing.T, m map[string]any) {
		wantKeys(t, m, []string{"key_package"}, "add")
	}),
	bodyExpect("update_proposal", "update", []string{"update"}, func(t *testing.T, m map[string]any) {
		wantKeys(t, m, []string{"leaf_node"}, "update")
	}),
	bodyExpect("remove_proposal", "remove", []string{"remove"}, func(t *testing.T, m map[string]any) {
		wantKeys(t, m, []string{"removed"}, "remove")
	}),
	bodyExpect("pre_shared_key_proposal", "psk", []string{"psk"}, func(t *testing.T, m map[string]any) {
		st := fmt.Sprint(mustAt(t, m, "psk", "psk", "psktype"))
		switch st {
		case "external":
			wantKeys(t, m, []string{"psktype", "psk_id", "psk_nonce"}, "psk", "psk")
		case "resumption":
			wantKeys(t, m, []string{"psktype", "usage", "psk_group_id", "psk_epoch", "psk_nonce"}, "psk", "psk")
		default:
			t.Errorf("psktype %s", st)
		}
	}),
	bodyExpect("re_init_proposal", "reinit", []string{"reinit"}, func(t *testing.T, m map[string]any) {
		wantKeys(t, m, []string{"group_id", "version", "cipher_suite", "extensions"}, "reinit")
	}),
	bodyExpect("external_init_proposal", "external_init", []string{"external_init"}, func(t *testing.T, m map[string]any) {
		wantKeys(t, m, []string{"kem_output"}, "external_init")
	}),
	bodyExpect("group_context_extensions_proposal", "group_context_extensions", []string{"group_context_extensions"}, func(t *testing.T, m map[string]any) {
		wantKeys(t, m, []string{"extensions"}, "group_context_extensions")
	}),
	bodyExpect("commit", "commit", []string{"proposals", "path"}, func(t *testing.T, m map[string]any) {
		ps, _ := mustAt(t, m, "proposals").([]any)
		for _, p := range ps {
			switch typ := fmt.Sprint(mustAt(t, p, "type")); typ {
			case "proposal":
				wantKeys(t, p, []string{"type", "proposal"})
			case "reference":
				wantKeys(t, p, []string{"type", "reference"})
			default:
				t.Errorf("ProposalOrRef type %s", typ)
			}
		}
	}),
	publicMessageExpect("public_message_application", "application"),
	publicMessageExpect("public_message_proposal", "proposal"),
	publicMessageExpect("public_message_commit", "commit"),
	mlsMessageExpect("private_message", "mls_private_message", "private_message",
		[]string{"group_id", "epoch", "content_type", "authenticated_data", "encrypted_sender_data", "ciphertext"}, nil),
}

// messagesVectors reads the official messages.json, skipping the test when
// the vectors are absent (failing under CI=true, as realVectors does).
func messagesVectors(t *testing.T) []map[string]string {
	t.Helper()
	dir := realVectors(t)
	raw, err := vectors.Read(dir, "messages.json")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal(err)
		}
		t.Skipf("messages.json not available: %v", err)
	}
	var vs []map[string]string
	if err := json.Unmarshal(raw, &vs); err != nil {
		t.Fatal(err)
	}
	if len(vs) == 0 {
		t.Fatal("messages.json holds no vectors")
	}
	return vs
}

// TestInspectMessagesVectors inspects every structure of every official
// messages.json vector, as hex on standard input: each decodes, the JSON
// parses and names the RFC 9420 fields of its structure, and a ratchet
// tree is followed by its text. The same input with no -type either
// decodes as one of the automatically tried structures or fails with an
// offset; it never panics.
func TestInspectMessagesVectors(t *testing.T) {
	t.Parallel()
	vs := messagesVectors(t)
	autoNames := strings.Split(autoOrder, ", ")
	n := 0
	for i, v := range vs {
		for _, e := range messageExpectations {
			h, ok := v[e.field]
			if !ok {
				t.Fatalf("vector %d has no %s", i, e.field)
			}
			b, err := hex.DecodeString(h)
			if err != nil {
				t.Fatal(err)
			}
			t.Run(fmt.Sprintf("%d/%s", i, e.field), func(t *testing.T) {
				status, stdout, stderr := inspect([]byte(h), e.args...)
				if status != 0 {
					t.Fatalf("status %d: %s", status, stderr)
				}
				m, text := splitOutput(t, stdout)
				wantValue(t, m, "hex", "encoding")
				e.check(t, m, text, b)
				if e.args == nil {
					return
				}
				status, stdout, stderr = inspect([]byte(h))
				switch status {
				case 0:
					m, _ := splitOutput(t, stdout)
					if s := fmt.Sprint(m["structure"]); !slices.Contains(autoNames, s) {
						t.Errorf("auto-detected %q, not one of %v", s, autoNames)
					}
				case 1:
					if !offsetRE.MatchString(stderr) {
						t.Errorf("auto-detection failed without an offset: %s", stderr)
					}
				default:
					t.Errorf("auto-detection: status %d: %s", status, stderr)
				}
			})
			n++
		}
	}
	t.Logf("inspected %d structures from %d vectors", n, len(vs))
}

// offsetRE matches the decoder's error: the structure, the field and the
// byte offset.
var offsetRE = regexp.MustCompile(`decoding ([A-Za-z]+)\.([a-z_]+) at byte ([0-9]+)`)

// TestInspectTruncated feeds every proper prefix of several official
// structures with -type: each is rejected with exit status 1 and one line
// naming the field and an offset inside the prefix. Without -type a prefix
// may happen to be a whole structure of another type (the 44-byte prefix
// of a PublicMessage of suite 1 is a well-formed bare GroupInfo); it must
// then be reported as that other structure, never as the one it was cut
// from, and otherwise fail the same way.
func TestInspectTruncated(t *testing.T) {
	t.Parallel()
	vs := messagesVectors(t)
	cases := []struct{ field, typ string }{
		{"mls_welcome", "mlsmessage"},
		{"mls_group_info", "mlsmessage"},
		{"mls_key_package", "mlsmessage"},
		{"public_message_commit", "mlsmessage"},
		{"public_message_proposal", "mlsmessage"},
		{"private_message", "mlsmessage"},
		{"ratchet_tree", "ratchettree"},
	}
	for _, c := range cases {
		b, err := hex.DecodeString(vs[0][c.field])
		if err != nil {
			t.Fatal(err)
		}
		t.Run(c.field, func(t *testing.T) {
			coincidences := 0
			defer func() {
				if coincidences > 0 {
					t.Logf("%d of %d prefixes are whole structures of another type when no -type is given", coincidences, len(b)-1)
				}
			}()
			for n := 1; n < len(b); n++ {
				for _, args := range [][]string{{"-type", c.typ, "-encoding", "binary"}, {}} {
					in := b[:n]
					if len(args) == 0 {
						in = []byte(hex.EncodeToString(in))
					}
					status, stdout, stderr := inspect(in, args...)
					if status == 0 && len(args) == 0 {
						m, _ := splitOutput(t, stdout)
						if m["structure"] == c.typ {
							t.Fatalf("prefix %d/%d decoded as the %s it was cut from", n, len(b), c.typ)
						}
						coincidences++
						continue
					}
					if status != 1 || stdout != "" {
						t.Fatalf("prefix %d/%d %v: status %d, stdout %.200q", n, len(b), args, status, stdout)
					}
					if strings.Count(stderr, "\n") != 1 || !strings.HasSuffix(stderr, "\n") {
						t.Fatalf("prefix %d %v: error is not one line: %q", n, args, stderr)
					}
					sm := offsetRE.FindStringSubmatch(stderr)
					if sm == nil {
						t.Fatalf("prefix %d %v: no field and offset in %q", n, args, stderr)
					}
					if off, _ := strconv.Atoi(sm[3]); off > n {
						t.Fatalf("prefix %d %v: offset %d beyond the input: %q", n, args, off, stderr)
					}
				}
			}
		})
	}
}

// TestInspectEncodings gives the same bytes as binary, hex (upper case,
// wrapped) and base64 (standard and URL, padded and not): the JSON is the
// same apart from the encoding it names.
func TestInspectEncodings(t *testing.T) {
	t.Parallel()
	vs := messagesVectors(t)
	// A message whose base64 forms differ between the alphabets and whose
	// length needs padding, so every variant is exercised.
	var b []byte
	for _, v := range vs {
		c, _ := hex.DecodeString(v["mls_key_package"])
		std := base64.StdEncoding.EncodeToString(c)
		if len(c)%3 != 0 && strings.ContainsAny(std, "+/") {
			b = c
			break
		}
	}
	if b == nil {
		t.Fatal("no key package in messages.json has a base64 form with padding and + or /")
	}
	wrap := func(s string, n int) string {
		var out strings.Builder
		for len(s) > n {
			out.WriteString(s[:n] + "\n")
			s = s[n:]
		}
		return out.String() + s + "\n"
	}
	dir := t.TempDir()
	forms := []struct {
		name, encoding string
		in             []byte
	}{
		{"binary", "binary", b},
		{"hex", "hex", []byte(hex.EncodeToString(b))},
		{"hex upper wrapped", "hex", []byte(wrap(strings.ToUpper(hex.EncodeToString(b)), 64))},
		{"base64 std", "base64", []byte(base64.StdEncoding.EncodeToString(b))},
		{"base64 std wrapped", "base64", []byte(wrap(base64.StdEncoding.EncodeToString(b), 76))},
		{"base64 url", "base64", []byte(base64.URLEncoding.EncodeToString(b))},
		{"base64 raw url", "base64", []byte(base64.RawURLEncoding.EncodeToString(b))},
		{"base64 raw std", "base64", []byte(base64.RawStdEncoding.EncodeToString(b))},
	}
	var want string
	for i, f := range forms {
		// Through the command dispatcher, from a file.
		path := filepath.Join(dir, fmt.Sprintf("in%d", i))
		if err := os.WriteFile(path, f.in, 0o600); err != nil {
			t.Fatal(err)
		}
		status, stdout, stderr := runCmd("inspect", path)
		if status != 0 {
			t.Fatalf("%s: status %d: %s", f.name, status, stderr)
		}
		m, _ := splitOutput(t, stdout)
		wantValue(t, m, f.encoding, "encoding")
		wantValue(t, m, "mls_key_package", "wire_format")
		delete(m, "encoding")
		got, _ := json.Marshal(m)
		if i == 0 {
			want = string(got)
		} else if string(got) != want {
			t.Errorf("%s: JSON differs from the binary form's:\n%s\n%s", f.name, got, want)
		}
		// The same from standard input, and with the encoding forced.
		status, stdout2, _ := inspect(f.in, "-encoding", f.encoding)
		if status != 0 || stdout2 != stdout {
			t.Errorf("%s: standard input with -encoding %s gives status %d and different output", f.name, f.encoding, status)
		}
	}
	// "-" is standard input too.
	status, stdout, _ := inspect([]byte(hex.EncodeToString(b)), "-json", "-")
	if m, _ := splitOutput(t, stdout); status != 0 || m["wire_format"] != "mls_key_package" {
		t.Errorf(`"-": status %d, %.200s`, status, stdout)
	}
	// A forced encoding that does not fit is an error.
	for _, c := range []struct {
		enc string
		in  []byte
	}{{"hex", []byte("zz")}, {"hex", []byte("abc")}, {"base64", []byte("%%%%")}} {
		if status, _, stderr := inspect(c.in, "-encoding", c.enc); status != 1 || !strings.Contains(stderr, c.enc) {
			t.Errorf("-encoding %s on %q: status %d, %s", c.enc, c.in, status, stderr)
		}
	}
}

// TestInspectType forces structures with -type and checks the automatic
// order: an MLSMessage is reported as one, its bare body as the body's
// structure, and a structure forced on the wrong bytes fails with an
// offset.
func TestInspectType(t *testing.T) {
	t.Parallel()
	vs := messagesVectors(t)
	mkp, _ := hex.DecodeString(vs[0]["mls_key_package"])
	mgi, _ := hex.DecodeString(vs[0]["mls_group_info"])
	mw, _ := hex.DecodeString(vs[0]["mls_welcome"])
	kp, gi, w := mkp[4:], mgi[4:], mw[4:] // bodies without version and wire_format
	cases := []struct {
		name string
		in   []byte
		args []string
		want string // structure, or "" for a failure
		key  string // a top-level key the JSON must have
	}{
		{"mlsmessage auto", mkp, nil, "mlsmessage", "key_package"},
		{"bare keypackage auto", kp, nil, "keypackage", "init_key"},
		{"bare keypackage forced", kp, []string{"-type", "keypackage"}, "keypackage", "key_package_ref"},
		{"bare groupinfo auto", gi, nil, "groupinfo", "group_context"},
		{"bare groupinfo forced", gi, []string{"-type", "GroupInfo"}, "groupinfo", "signer"},
		{"bare welcome auto", w, nil, "welcome", "encrypted_group_info"},
		{"bare welcome forced", w, []string{"-type", "welcome"}, "welcome", "secrets"},
		{"mlsmessage forced on a bare keypackage", kp, []string{"-type", "mlsmessage"}, "", ""},
		{"keypackage forced on an mlsmessage", mkp, []string{"-type", "keypackage"}, "", ""},
		{"leafnode forced on a keypackage", kp, []string{"-type", "leafnode"}, "", ""},
	}
	// The key package's leaf node, cut out of the key package: what
	// follows version, cipher_suite and init_key, up to the key package's
	// extensions (empty: one zero byte) and signature.
	initLen := int(kp[4]) // a one-byte varint for a 32-byte key
	sig := hexLen(t, mustAtJSON(t, mkp, "key_package", "signature"))
	sigHeader := 1 // the varint length of the signature
	if sig >= 64 {
		sigHeader = 2
	}
	leaf := kp[4+1+initLen : len(kp)-1-(sigHeader+sig)]
	cases = append(cases,
		struct {
			name string
			in   []byte
			args []string
			want string
			key  string
		}{"bare leafnode auto", leaf, nil, "leafnode", "leaf_node_source"})
	for _, c := range cases {
		status, stdout, stderr := inspect(c.in, append(c.args, "-encoding", "binary")...)
		if c.want == "" {
			if status != 1 || !offsetRE.MatchString(stderr) && !strings.Contains(stderr, "before the end of the input") {
				t.Errorf("%s: status %d, %s", c.name, status, stderr)
			}
			continue
		}
		if status != 0 {
			t.Errorf("%s: status %d: %s", c.name, status, stderr)
			continue
		}
		m, _ := splitOutput(t, stdout)
		wantValue(t, m, c.want, "structure")
		if _, ok := m[c.key]; !ok {
			t.Errorf("%s: no %s in %v", c.name, c.key, keysOf(m))
		}
	}
	// The leaf node matches the key package's.
	_, out, _ := inspect(leaf, "-type", "leafnode")
	m, _ := splitOutput(t, out)
	wantValue(t, m, mustAtJSON(t, mkp, "key_package", "leaf_node", "signature"), "signature")
	// Usage errors.
	for _, args := range [][]string{{"-type", "nonsense"}, {"-encoding", "ebcdic"}, {"-json", "-tree-text"}, {"-tree", "x", "-verify"}, {"a", "b"}, {"-max-input", "0"}} {
		if status, _, stderr := inspect(nil, args...); status != 2 || stderr == "" {
			t.Errorf("%v: status %d, %s", args, status, stderr)
		}
	}
	if status, stdout, _ := runCmd("inspect", "-h"); status != 0 || !strings.Contains(stdout, "-type NAME") || !strings.Contains(stdout, autoOrder) {
		t.Errorf("-h: status %d:\n%s", status, stdout)
	}
}

// mustAtJSON inspects b and returns the value at path.
func mustAtJSON(t *testing.T, b []byte, path ...string) string {
	t.Helper()
	status, out, stderr := inspect(b, "-encoding", "binary", "-json")
	if status != 0 {
		t.Fatalf("status %d: %s", status, stderr)
	}
	m, _ := splitOutput(t, out)
	return fmt.Sprint(mustAt(t, m, path...))
}

func hexLen(t *testing.T, h string) int {
	t.Helper()
	b, err := hex.DecodeString(h)
	if err != nil {
		t.Fatal(err)
	}
	return len(b)
}

// TestInspectBadInput: garbage, an unknown wire format, empty input, a
// file that does not exist and input over -max-input all give exit status
// 1 and one line on standard error; random bytes never panic.
func TestInspectBadInput(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		in   []byte
		args []string
		want string
	}{
		{"empty", nil, nil, "empty input"},
		{"blank", []byte(" \n\t"), nil, "empty input"},
		{"odd hex", []byte("0001000"), nil, "hex input with an odd number of digits"},
		{"unknown wire format", []byte{0, 1, 0, 9, 0}, []string{"-type", "mlsmessage"}, "MLSMessage.wire_format at byte 4"},
		{"unknown version", []byte{0, 2, 0, 1}, []string{"-type", "mlsmessage"}, "MLSMessage.version at byte 2"},
		{"trailing byte", []byte{0, 0, 0, 1, 9}, []string{"-type", "remove", "-encoding", "binary"}, "as remove: decoding ended at byte 4, before the end of the input: trailing data: 1 bytes"},
		{"empty tree", []byte{0}, []string{"-type", "ratchettree", "-encoding", "binary"}, "RatchetTree.ratchet_tree at byte 0: invalid value: no nodes"},
		{"tree ending blank", []byte{2, 0, 0}, []string{"-type", "ratchettree", "-encoding", "binary"}, "the last of 2 nodes is blank"},
		{"welcome for no one", []byte{0, 1, 0, 0}, []string{"-type", "welcome", "-encoding", "binary"}, "Welcome.secrets at byte 2"},
		{"too large", []byte("000100050000"), []string{"-max-input", "4"}, "larger than 4 bytes"},
		{"no file", nil, []string{filepath.Join(t.TempDir(), "missing")}, "no such file"},
	}
	for _, c := range cases {
		status, stdout, stderr := inspect(c.in, c.args...)
		if status != 1 || stdout != "" || strings.Count(stderr, "\n") != 1 || !strings.Contains(stderr, c.want) {
			t.Errorf("%s: status %d, stdout %q, stderr %q; want %q", c.name, status, stdout, stderr, c.want)
		}
	}
	rng := mrand.New(mrand.NewPCG(1, 2))
	for i := range 2000 {
		b := make([]byte, rng.IntN(64))
		for j := range b {
			b[j] = byte(rng.Uint32())
		}
		if i%2 == 0 && len(b) >= 4 {
			copy(b, []byte{0, 1, 0, byte(1 + rng.IntN(5))}) // a plausible MLSMessage header
		}
		status, _, stderr := inspect(b, "-encoding", "binary")
		if status != 0 && (status != 1 || strings.Count(stderr, "\n") != 1) {
			t.Fatalf("%x: status %d, %q", b, status, stderr)
		}
	}
}

// FuzzInspect: no input makes inspect panic or exit with a status other
// than 0 or 1, and a failure is one line.
func FuzzInspect(f *testing.F) {
	fuzzcorpus.Require(f, 0)
	f.Add([]byte{0, 1, 0, 5})
	f.Add([]byte("0001000300"))
	f.Add([]byte("AAEABQ=="))
	if dir, err := vectors.Dir(); err == nil {
		if raw, err := vectors.Read(dir, "messages.json"); err == nil {
			var vs []map[string]string
			if json.Unmarshal(raw, &vs) == nil && len(vs) > 0 {
				for _, h := range vs[0] {
					b, _ := hex.DecodeString(h)
					f.Add(b)
				}
			}
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		status, _, stderr := inspect(b)
		if status != 0 && (status != 1 || strings.Count(stderr, "\n") != 1) {
			t.Fatalf("status %d, %q", status, stderr)
		}
	})
}

func newTestClient(t *testing.T, cred credential.Credential, signer ed25519.PrivateKey) *mls.Client {
	t.Helper()
	c, err := mls.NewClient(context.Background(), memory.New(), cred, signer, credential.AcceptAll, mls.ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func newKey(t *testing.T) ed25519.PrivateKey {
	t.Helper()
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func writeFile(t *testing.T, dir, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestInspectGroupInfoTree checks a real GroupInfo (built with mls.Client:
// CreateGroup, ExportGroupInfo, ExportRatchetTree) against its tree, a
// tree of a later epoch, and with a damaged signature. Each check is
// named, and a failure gives exit status 1 naming the failed check only.
func TestInspectGroupInfoTree(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	const suite = mls.MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519
	alice := newTestClient(t, credential.NewBasic([]byte("alice")), newKey(t))
	g, err := alice.CreateGroup(ctx, suite, mls.GroupConfig{})
	if err != nil {
		t.Fatal(err)
	}
	giMsg, err := g.ExportGroupInfo(false)
	if err != nil {
		t.Fatal(err)
	}
	gi, err := giMsg.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	tree0, err := g.ExportRatchetTree()
	if err != nil {
		t.Fatal(err)
	}
	aliceKey0 := g.Members()[0].EncryptionKey

	// Bob joins: the tree of the next epochs differs from the GroupInfo's.
	bob := newTestClient(t, credential.NewBasic([]byte("bob")), newKey(t))
	kp, err := bob.NewKeyPackage(ctx, suite, mls.KeyPackageOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := g.AddMembers(ctx, kp); err != nil {
		t.Fatal(err)
	}
	if err := g.MergePendingCommit(ctx); err != nil {
		t.Fatal(err)
	}
	// Alice updates her keys, which gives the parent node a key.
	if _, err := g.SelfUpdate(ctx); err != nil {
		t.Fatal(err)
	}
	if err := g.MergePendingCommit(ctx); err != nil {
		t.Fatal(err)
	}
	tree1, err := g.ExportRatchetTree()
	if err != nil {
		t.Fatal(err)
	}
	gi1Msg, err := g.ExportGroupInfo(true)
	if err != nil {
		t.Fatal(err)
	}
	gi1, err := gi1Msg.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	members1 := g.Members()

	bad := slices.Clone(gi)
	bad[len(bad)-1] ^= 1 // the last byte of the signature

	dir := t.TempDir()
	giPath := writeFile(t, dir, "gi.bin", gi)
	badPath := writeFile(t, dir, "bad.bin", bad)
	t0 := writeFile(t, dir, "tree0.hex", []byte(hex.EncodeToString(tree0)+"\n"))
	t1 := writeFile(t, dir, "tree1.b64", []byte(base64.StdEncoding.EncodeToString(tree1)))
	gi1Path := writeFile(t, dir, "gi1.bin", gi1)
	kpPath := writeFile(t, dir, "kp.bin", mustBytes(t, kp.MarshalMessage))

	checks := func(t *testing.T, stdout string) map[string]bool {
		t.Helper()
		m, _ := splitOutput(t, stdout)
		wantKeys(t, m, []string{"tree_hash", "signature", "tree"}, "verification")
		res := map[string]bool{}
		for _, c := range []string{"tree_hash", "signature", "tree"} {
			res[c] = mustAt(t, m, "verification", c, "ok") == true
		}
		return res
	}

	t.Run("right tree", func(t *testing.T) {
		status, stdout, stderr := runCmd("inspect", "-tree", t0, giPath)
		if status != 0 || stderr != "" {
			t.Fatalf("status %d: %s", status, stderr)
		}
		if res := checks(t, stdout); !res["tree_hash"] || !res["signature"] || !res["tree"] {
			t.Errorf("checks %v", res)
		}
		m, text := splitOutput(t, stdout)
		wantValue(t, m, mustAt(t, m, "group_info", "group_context", "tree_hash"), "verification", "tree_hash", "computed")
		want := fmt.Sprintf("node 0  leaf 0  key %s…  identity \"alice\"\n", hex.EncodeToString(aliceKey0[:8]))
		if !strings.Contains(text, want) || !strings.Contains(text, "check tree_hash: ok\n") || !strings.Contains(text, "check signature: ok\n") {
			t.Errorf("text lacks %q or the checks:\n%s", want, text)
		}
	})
	t.Run("tree of a later epoch", func(t *testing.T) {
		status, stdout, stderr := runCmd("inspect", "-tree", t1, giPath)
		if status != 1 {
			t.Fatalf("status %d, want 1: %s", status, stderr)
		}
		if res := checks(t, stdout); res["tree_hash"] || !res["signature"] {
			t.Errorf("checks %v, want only tree_hash to fail", res)
		}
		if !strings.Contains(stderr, "check tree_hash failed") || strings.Contains(stderr, "check signature failed") {
			t.Errorf("stderr %q", stderr)
		}
	})
	t.Run("damaged signature", func(t *testing.T) {
		status, stdout, stderr := runCmd("inspect", "-tree", t0, badPath)
		if status != 1 {
			t.Fatalf("status %d, want 1: %s", status, stderr)
		}
		if res := checks(t, stdout); !res["tree_hash"] || res["signature"] {
			t.Errorf("checks %v, want only signature to fail", res)
		}
		if !strings.Contains(stderr, "check signature failed") || strings.Contains(stderr, "check tree_hash failed") {
			t.Errorf("stderr %q", stderr)
		}
	})
	t.Run("tree in the extension", func(t *testing.T) {
		status, stdout, stderr := runCmd("inspect", "-verify", gi1Path)
		if status != 0 {
			t.Fatalf("status %d: %s", status, stderr)
		}
		if res := checks(t, stdout); !res["tree_hash"] || !res["signature"] || !res["tree"] {
			t.Errorf("checks %v", res)
		}
		// The tree text alone, with each member's identity and key prefix.
		status, text, stderr := runCmd("inspect", "-tree-text", gi1Path)
		if status != 0 {
			t.Fatalf("-tree-text: status %d: %s", status, stderr)
		}
		if !strings.HasPrefix(text, "ratchet tree: 3 nodes, 2 leaves\n") {
			t.Errorf("tree text:\n%s", text)
		}
		for _, mb := range members1 {
			want := fmt.Sprintf("node %d  leaf %d  key %s…  identity %q\n", 2*mb.Index, mb.Index, hex.EncodeToString(mb.EncryptionKey[:8]), mb.Credential.Identity())
			if !strings.Contains(text, want) {
				t.Errorf("tree text lacks %q:\n%s", want, text)
			}
		}
		if !regexp.MustCompile(`(?m)^node 1  parent  key [0-9a-f]{16}…$`).MatchString(text) {
			t.Errorf("no parent line with a key:\n%s", text)
		}
	})
	t.Run("not a GroupInfo", func(t *testing.T) {
		status, _, stderr := runCmd("inspect", "-tree", t0, kpPath)
		if status != 1 || !strings.Contains(stderr, "need a GroupInfo") {
			t.Errorf("status %d: %s", status, stderr)
		}
		status, _, stderr = runCmd("inspect", "-verify", giPath)
		if status != 1 || !strings.Contains(stderr, "no ratchet_tree extension") {
			t.Errorf("-verify without the extension: status %d: %s", status, stderr)
		}
		status, _, stderr = runCmd("inspect", "-tree", kpPath, giPath)
		if status != 1 || !strings.Contains(stderr, "as ratchettree") || !regexp.MustCompile(`at byte \d+`).MatchString(stderr) {
			t.Errorf("-tree with a key package: status %d: %s", status, stderr)
		}
	})
}

func mustBytes(t *testing.T, f func() ([]byte, error)) []byte {
	t.Helper()
	b, err := f()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestInspectKeyPackageExtensions inspects key packages made by the
// library: a last-resort one with an X.509 credential and an extension
// type RFC 9420 does not define. The credential's certificate is parsed,
// last_resort is named, the unknown extension is type and hex, and the
// key_package_ref is the library's.
func TestInspectKeyPackageExtensions(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	key := newKey(t)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(7),
		Subject:      pkix.Name{CommonName: "carol"},
		NotBefore:    time.Unix(1700000000, 0),
		NotAfter:     time.Unix(1900000000, 0),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	cred, err := credential.NewX509([][]byte{der})
	if err != nil {
		t.Fatal(err)
	}
	c := newTestClient(t, cred, key)
	kp, err := c.NewKeyPackage(ctx, mls.MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519, mls.KeyPackageOptions{
		LastResort:     true,
		Capabilities:   mls.Capabilities{Extensions: []uint16{0xff01}},
		LeafExtensions: []mls.Extension{{Type: 0xff01, Data: []byte{0xca, 0xfe}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	b := mustBytes(t, kp.MarshalMessage)
	status, stdout, stderr := inspect([]byte(base64.StdEncoding.EncodeToString(b)))
	if status != 0 {
		t.Fatalf("status %d: %s", status, stderr)
	}
	m, _ := splitOutput(t, stdout)
	kpj := mustAt(t, m, "key_package")
	wantValue(t, kpj, hex.EncodeToString(kp.Ref()), "key_package_ref")
	wantValue(t, kpj, "x509", "leaf_node", "credential", "credential_type")
	wantValue(t, kpj, hex.EncodeToString(der), "leaf_node", "credential", "certificates", "0", "cert_data")
	wantValue(t, kpj, "CN=carol", "leaf_node", "credential", "certificates", "0", "subject")
	wantValue(t, kpj, "CN=carol", "leaf_node", "credential", "certificates", "0", "issuer")
	wantValue(t, kpj, "2030-03-17T17:46:40Z", "leaf_node", "credential", "certificates", "0", "not_after")
	exts, _ := mustAt(t, kpj, "extensions").([]any)
	// last_resort, then the GREASE extension the Client adds (RFC 9420,
	// Section 13.5), shown as its hex type.
	if len(exts) != 2 || fmt.Sprint(mustAt(t, exts[0], "extension_type")) != "last_resort" ||
		!isGREASEHex(fmt.Sprint(mustAt(t, exts[1], "extension_type"))) {
		t.Errorf("key package extensions %v, want last_resort and a GREASE extension", exts)
	}
	var found bool
	leafExts, _ := mustAt(t, kpj, "leaf_node", "extensions").([]any)
	for _, e := range leafExts {
		if mustAt(t, e, "extension_type") == "0xff01" {
			found = true
			wantValue(t, e, "cafe", "extension_data")
		}
	}
	if !found {
		t.Errorf("no extension 0xff01 in %v", leafExts)
	}
	caps, _ := mustAt(t, kpj, "leaf_node", "capabilities", "extensions").([]any)
	if !slices.ContainsFunc(caps, func(v any) bool { return v == "0xff01" }) {
		t.Errorf("capabilities.extensions %v lack 0xff01", caps)
	}
}

// isGREASEHex reports whether s is a GREASE value of RFC 9420, Section
// 13.5 (0x0a0a, 0x1a1a, ... 0xeaea) as inspect prints unknown types.
func isGREASEHex(s string) bool {
	return len(s) == 6 && strings.HasPrefix(s, "0x") && s[3] == 'a' && s[5] == 'a' && s[2] == s[4] && s[2] != 'f'
}
