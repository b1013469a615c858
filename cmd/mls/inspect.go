package main

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/mlskit/mls/internal/message"
	"github.com/mlskit/mls/internal/wire"
)

func init() {
	register(&command{name: "inspect", summary: "print an MLS message, key package, GroupInfo, Welcome, leaf node or ratchet tree as JSON",
		run: func(args []string, stdout, stderr io.Writer) int { return runInspect(args, os.Stdin, stdout, stderr) }})
}

const inspectSynopsis = `inspect [-type NAME] [-encoding auto|binary|hex|base64] [-json | -tree-text] [-tree FILE | -verify] [FILE]

Reads one MLS structure from FILE (standard input when FILE is absent or "-")
and prints it as JSON whose field names are those of RFC 9420, followed, when
the input holds a ratchet tree, by the tree as text: one line per node with
its index, leaf or parent, "blank" or the first bytes of its encryption key,
and a leaf's credential identity.

Encoding (-encoding auto): after removing all ASCII whitespace, input made
only of hex digits is hex (an odd number of digits is an error); otherwise
input that is valid standard or URL-safe base64 (padded or not) is base64;
otherwise the bytes are read as they are. Byte offsets in errors count
decoded bytes.

Structure (-type): without it, the first of these that decodes the whole
input, with no byte left over, wins (the JSON names it in "structure"):
  ` + autoOrder + `
These are read only with -type (add to group_context_extensions are
proposal bodies without their proposal_type):
  ` + extraTypes + `

JSON: byte strings (keys, signatures, hashes, references, ciphertexts) are
hex; enumerations are the RFC's names, or "0x..." for a value it does not
name; cipher suites are {"id", "name"}. Known extensions, credentials and
proposals are decoded, others shown as type and hex. A KeyPackage also gets
its key_package_ref (RFC 9420, Section 5.2) when its suite is known.

With -tree FILE (a ratchet tree in any encoding) or -verify (the GroupInfo's
own ratchet_tree extension), a GroupInfo is checked: its signature against
the signer's leaf (RFC 9420, Section 12.4.3), its tree_hash against the tree
(Section 7.8), and the tree itself as a joiner checks it (Section 12.4.3.1;
lifetimes are not checked). A failed check is named on standard error and
the exit status is 1. Bad input gets a one-line error with the byte offset
and the field, and exit status 1.

Flags:`

// defaultMaxInput caps what inspect reads. Decoding may allocate several
// times the input's size (every node and vector becomes a Go value), so the
// cap keeps memory bounded for any input; -max-input raises it.
const defaultMaxInput = 8 << 20

// runInspect is the inspect command, with standard input as a parameter
// so tests can feed it.
func runInspect(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("inspect", flag.ContinueOnError)
	typ := fs.String("type", "", "decode the input as `NAME` (see above) instead of trying the structures in order")
	enc := fs.String("encoding", "auto", "input encoding: auto, binary, hex or base64")
	jsonOnly := fs.Bool("json", false, "print only the JSON (no tree text), for jq and scripts")
	treeText := fs.Bool("tree-text", false, "print only the tree text (for a ratchet tree, or a GroupInfo with a tree)")
	treeFile := fs.String("tree", "", "verify a GroupInfo against the ratchet tree in `FILE`")
	verify := fs.Bool("verify", false, "verify a GroupInfo against its own ratchet_tree extension")
	maxInput := fs.Int("max-input", defaultMaxInput, "read at most `N` bytes of input")
	file, ok, status := parseInspectArgs(fs, args, stdout, stderr)
	if !ok {
		return status
	}
	fail := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "mls inspect: "+format+"\n", a...)
		return 1
	}
	usageErr := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "mls inspect: "+format+"\n", a...)
		return 2
	}
	if *jsonOnly && *treeText {
		return usageErr("-json and -tree-text exclude each other")
	}
	if *treeFile != "" && *verify {
		return usageErr("-tree and -verify exclude each other")
	}
	if *typ != "" && findType(*typ) == nil {
		return usageErr("unknown -type %q; known: %s", *typ, strings.Join(typeNames(), ", "))
	}
	if !slices.Contains([]string{"auto", "binary", "hex", "base64"}, *enc) {
		return usageErr("unknown -encoding %q (auto, binary, hex or base64)", *enc)
	}
	if *maxInput <= 0 {
		return usageErr("-max-input must be positive")
	}

	name := file
	var in io.Reader = stdin
	if file == "" || file == "-" {
		name = "standard input"
	} else {
		f, err := os.Open(file)
		if err != nil {
			return fail("%v", err)
		}
		defer f.Close()
		in = f
	}
	raw, err := readCapped(in, *maxInput)
	if err != nil {
		return fail("%s: %v", name, err)
	}
	data, encoding, err := decodeInput(raw, *enc)
	if err != nil {
		return fail("%s: %v", name, err)
	}
	v, err := decodeStructure(data, *typ)
	if err != nil {
		return fail("%s (%s, %d bytes): %v", name, encoding, len(data), err)
	}

	out := newObj().add("structure", v.typ.name).add("encoding", encoding)
	out.merge(v.json)

	var report *verifyReport
	var textTree *treeView
	if *treeFile != "" || *verify {
		gi := v.groupInfo()
		if gi == nil {
			return fail("-tree and -verify need a GroupInfo, and %s holds a %s", name, v.typ.name)
		}
		rt := v.tree
		if *treeFile != "" {
			rt, err = readTreeFile(*treeFile, *maxInput)
			if err != nil {
				return fail("-tree %s: %v", *treeFile, err)
			}
		} else if rt == nil {
			return fail("-verify: the GroupInfo has no ratchet_tree extension; pass the tree with -tree FILE")
		}
		report = verifyGroupInfo(gi, rt)
		out.add("verification", report.json())
		textTree = &treeView{rt: rt}
	} else if v.tree != nil {
		textTree = &treeView{rt: v.tree}
	}

	if !*treeText {
		if err := writeInspectJSON(stdout, out); err != nil {
			return fail("%v", err)
		}
	}
	if textTree != nil && !*jsonOnly {
		if !*treeText {
			fmt.Fprintln(stdout)
		}
		textTree.write(stdout)
		if report != nil {
			report.writeText(stdout)
		}
	} else if *treeText {
		return fail("%s holds a %s, which carries no ratchet tree", name, v.typ.name)
	}
	if report != nil && !report.ok() {
		for _, c := range report.checks {
			if c.err != nil {
				fmt.Fprintf(stderr, "mls inspect: check %s failed: %v\n", c.name, c.err)
			}
		}
		return 1
	}
	return 0
}

// parseInspectArgs parses flags and the one optional FILE argument, which
// may come before, between or after the flags. Errors and -h are reported
// by parseFlags, like every other command's.
func parseInspectArgs(fs *flag.FlagSet, args []string, stdout, stderr io.Writer) (file string, ok bool, status int) {
	fs.SetOutput(io.Discard)
	var pos []string
	for rest := args; ; {
		if err := fs.Parse(rest); err != nil {
			ok, status := parseFlags(fs, inspectSynopsis, rest, stdout, stderr)
			return "", ok, status
		}
		if fs.NArg() == 0 {
			break
		}
		pos = append(pos, fs.Arg(0))
		rest = fs.Args()[1:]
	}
	switch len(pos) {
	case 0:
		return "", true, 0
	case 1:
		return pos[0], true, 0
	}
	ok, status = parseFlags(fs, inspectSynopsis, pos[1:2], stdout, stderr)
	return "", ok, status
}

// readCapped reads all of r, failing when it holds more than max bytes.
func readCapped(r io.Reader, max int) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, int64(max)+1))
	if err != nil {
		return nil, err
	}
	if len(b) > max {
		return nil, fmt.Errorf("input larger than %d bytes (raise -max-input)", max)
	}
	return b, nil
}

// decodeInput turns the raw input into the bytes of the structure, per
// the rule in the usage text, and names the encoding it used.
func decodeInput(raw []byte, mode string) ([]byte, string, error) {
	if mode == "binary" {
		if len(raw) == 0 {
			return nil, "", errors.New("empty input")
		}
		return raw, "binary", nil
	}
	text := stripSpace(raw)
	if mode == "hex" || mode == "auto" && len(text) > 0 && allHex(text) {
		if len(text)%2 != 0 {
			return nil, "", fmt.Errorf("hex input with an odd number of digits (%d)", len(text))
		}
		b, ok := decodeHex(text)
		if !ok {
			return nil, "", errors.New("input is not hex")
		}
		return b, "hex", nil
	}
	if mode == "auto" && len(text) == 0 {
		return nil, "", errors.New("empty input")
	}
	if b, ok := decodeBase64(text); ok {
		return b, "base64", nil
	}
	if mode == "base64" {
		return nil, "", errors.New("input is not base64")
	}
	if len(raw) == 0 {
		return nil, "", errors.New("empty input")
	}
	return raw, "binary", nil
}

func stripSpace(b []byte) []byte {
	return bytes.Map(func(r rune) rune {
		switch r {
		case ' ', '\t', '\n', '\r', '\v', '\f':
			return -1
		}
		return r
	}, b)
}

func allHex(s []byte) bool {
	for _, c := range s {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

func decodeHex(s []byte) ([]byte, bool) {
	if len(s) == 0 || len(s)%2 != 0 {
		return nil, false
	}
	b := make([]byte, len(s)/2)
	if _, err := hex.Decode(b, s); err != nil {
		return nil, false
	}
	return b, true
}

func decodeBase64(s []byte) ([]byte, bool) {
	if len(s) == 0 {
		return nil, false
	}
	for _, e := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding, base64.RawStdEncoding, base64.RawURLEncoding} {
		b := make([]byte, e.DecodedLen(len(s)))
		if n, err := e.Decode(b, s); err == nil && n > 0 {
			return b[:n], true
		}
	}
	return nil, false
}

// structType is one structure inspect can decode.
type structType struct {
	name   string
	decode func(b []byte) (*decoded, error)
}

// decoded is a decoded structure: its JSON and what the tree and
// verification steps need.
type decoded struct {
	typ  *structType
	json *obj
	gi   *message.GroupInfo
	tree message.RatchetTree // a bare tree, or a GroupInfo's ratchet_tree extension
}

func (d *decoded) groupInfo() *message.GroupInfo { return d.gi }

// autoOrder and extraTypes are the structure names of the usage text.
const autoOrder = "mlsmessage, keypackage, groupinfo, welcome, leafnode, ratchettree"
const extraTypes = `groupcontext, groupsecrets, publicmessage, privatemessage, proposal,
  commit, updatepath, add, update, remove, psk, reinit, external_init,
  group_context_extensions`

// types lists the structures, those tried without -type first, in order.
var types = []*structType{
	{"mlsmessage", decodeAs(message.UnmarshalMLSMessage, jsonMLSMessage)},
	{"keypackage", decodeAs(message.UnmarshalKeyPackage, jsonKeyPackage)},
	{"groupinfo", decodeAs(message.UnmarshalGroupInfo, jsonGroupInfo)},
	{"welcome", decodeAs(unmarshalWelcome, jsonWelcome)},
	{"leafnode", decodeNew(jsonLeafNode)},
	{"ratchettree", decodeAs(unmarshalTree, jsonBareTree)},
	// -type only.
	{"groupcontext", decodeNew(jsonGroupContext)},
	{"groupsecrets", decodeAs(message.UnmarshalGroupSecrets, jsonGroupSecrets)},
	{"publicmessage", decodeNew(jsonPublicMessage)},
	{"privatemessage", decodeNew(jsonPrivateMessage)},
	{"proposal", decodeNew(jsonProposal)},
	{"commit", decodeNew(jsonCommit)},
	{"updatepath", decodeNew(jsonUpdatePath)},
	{"add", decodeNew(func(p *message.AddProposal) *obj {
		return jsonProposalBody(&message.Proposal{Type: message.ProposalAdd, Add: p})
	})},
	{"update", decodeNew(func(p *message.UpdateProposal) *obj {
		return jsonProposalBody(&message.Proposal{Type: message.ProposalUpdate, Update: p})
	})},
	{"remove", decodeNew(func(p *message.RemoveProposal) *obj {
		return jsonProposalBody(&message.Proposal{Type: message.ProposalRemove, Remove: p})
	})},
	{"psk", decodeNew(func(p *message.PreSharedKeyProposal) *obj {
		return jsonProposalBody(&message.Proposal{Type: message.ProposalPSK, PSK: p})
	})},
	{"reinit", decodeNew(func(p *message.ReInitProposal) *obj {
		return jsonProposalBody(&message.Proposal{Type: message.ProposalReInit, ReInit: p})
	})},
	{"external_init", decodeNew(func(p *message.ExternalInitProposal) *obj {
		return jsonProposalBody(&message.Proposal{Type: message.ProposalExternalInit, ExternalInit: p})
	})},
	{"group_context_extensions", decodeNew(func(p *message.GroupContextExtensionsProposal) *obj {
		return jsonProposalBody(&message.Proposal{Type: message.ProposalGroupContextExtensions, GroupContextExtensions: p})
	})},
}

// numAuto is how many entries of types are tried without -type.
const numAuto = 6

func typeNames() []string {
	names := make([]string, len(types))
	for i, t := range types {
		names[i] = t.name
	}
	return names
}

func findType(name string) *structType {
	name = strings.ToLower(name)
	for _, t := range types {
		if t.name == name || strings.ReplaceAll(t.name, "_", "") == name {
			return t
		}
	}
	return nil
}

// decodeAs wraps one of the message.Unmarshal* functions.
func decodeAs[T any](unmarshal func([]byte) (T, error), render func(T) *obj) func([]byte) (*decoded, error) {
	return func(b []byte) (*decoded, error) {
		v, err := unmarshal(b)
		if err != nil {
			return nil, err
		}
		return finish(v, render), nil
	}
}

// decodeNew decodes all of b into a new T with message.Unmarshal.
func decodeNew[T any, P interface {
	*T
	message.Decodable
}](render func(P) *obj) func([]byte) (*decoded, error) {
	return func(b []byte) (*decoded, error) {
		v := P(new(T))
		if err := message.Unmarshal(b, v); err != nil {
			return nil, err
		}
		return finish(v, render), nil
	}
}

// finish renders v and picks out a GroupInfo and a ratchet tree.
func finish[T any](v T, render func(T) *obj) *decoded {
	d := &decoded{json: render(v)}
	switch x := any(v).(type) {
	case *message.MLSMessage:
		d.gi = x.GroupInfo
	case *message.GroupInfo:
		d.gi = x
	case message.RatchetTree:
		d.tree = x
	}
	if d.gi != nil {
		var rt message.RatchetTree
		if ok, err := message.ParseExtension(d.gi.Extensions, &rt); ok && err == nil {
			d.tree = rt
		}
	}
	return d
}

// decodeStructure decodes b as the structure named typ, or, when typ is
// empty, as the first structure of the automatic order that decodes all of
// b. When none does, the error is the one that got furthest into the
// input, since that is most likely the structure the input was meant to be.
func decodeStructure(b []byte, typ string) (*decoded, error) {
	if typ != "" {
		t := findType(typ)
		d, err := t.decode(b)
		if err != nil {
			return nil, describe(t.name, err)
		}
		d.typ = t
		return d, nil
	}
	var best error
	bestAt := -1
	for _, t := range types[:numAuto] {
		d, err := t.decode(b)
		if err == nil {
			d.typ = t
			return d, nil
		}
		at := len(b)
		var we *wire.Error
		if errors.As(err, &we) {
			at = we.Offset
		}
		if at > bestAt {
			best, bestAt = describe(t.name, err), at
		}
	}
	return nil, fmt.Errorf("no structure decodes the whole input (tried %s); furthest: %w", autoOrder, best)
}

// describe prefixes a decoding error with the structure tried. A trailing
// data error names no field (the structure ended), so it says where the
// structure ended instead.
func describe(typ string, err error) error {
	var we *wire.Error
	if errors.As(err, &we) && we.Struct == "" && we.Field == "" && errors.Is(err, wire.ErrTrailingData) {
		return fmt.Errorf("as %s: decoding ended at byte %d, before the end of the input: %w", typ, we.Offset, we.Err)
	}
	return fmt.Errorf("as %s: %w", typ, err)
}

// unmarshalTree decodes a ratchet tree and applies the shape rule of RFC
// 9420, Section 12.4.3.3 that the decoder leaves to the tree: the vector is
// not empty and its last node is not blank. (Without it a lone zero byte
// would be a tree; the root package's ParseRatchetTree applies the same
// rule.)
func unmarshalTree(b []byte) (message.RatchetTree, error) {
	d := wire.NewDecoder(b)
	var rt message.RatchetTree
	rt.Decode(d)
	if d.Err() == nil && (len(rt) == 0 || rt[len(rt)-1] == nil) {
		what := "no nodes"
		if len(rt) > 0 {
			what = fmt.Sprintf("the last of %d nodes is blank", len(rt))
		}
		return nil, &wire.Error{Struct: "RatchetTree", Field: "ratchet_tree", Offset: 0,
			Err: fmt.Errorf("%w: %s (RFC 9420, Section 12.4.3.3)", wire.ErrInvalidValue, what)}
	}
	if err := d.Finish(); err != nil {
		return nil, err
	}
	return rt, nil
}

// unmarshalWelcome decodes a bare Welcome and rejects one for no one, as
// the root package's ParseWelcome does: besides being useless, a bare
// Welcome of cipher suite 1 with no secrets could not be told from the
// start of an MLSMessage or a truncated one.
func unmarshalWelcome(b []byte) (*message.Welcome, error) {
	// The rule is checked before trailing bytes are, so that a short input
	// that starts like an empty Welcome is not reported as one.
	d := wire.NewDecoder(b)
	w := new(message.Welcome)
	w.Decode(d)
	if d.Err() == nil && len(w.Secrets) == 0 {
		return nil, &wire.Error{Struct: "Welcome", Field: "secrets", Offset: 2,
			Err: fmt.Errorf("%w: no encrypted group secrets: a Welcome for no one", wire.ErrInvalidValue)}
	}
	if err := d.Finish(); err != nil {
		return nil, err
	}
	return w, nil
}

// readTreeFile reads a ratchet tree in any encoding: the bare vector (the
// form of Group.ExportRatchetTree) or a whole ratchet_tree Extension.
func readTreeFile(path string, max int) (message.RatchetTree, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	raw, err := readCapped(f, max)
	if err != nil {
		return nil, err
	}
	data, _, err := decodeInput(raw, "auto")
	if err != nil {
		return nil, err
	}
	rt, err := unmarshalTree(data)
	if err != nil {
		// The root package's ParseRatchetTree also takes the tree as a
		// ratchet_tree Extension; so does -tree.
		var ext message.Extension
		if message.Unmarshal(data, &ext) == nil && ext.Type == message.ExtensionRatchetTree {
			if rt, extErr := unmarshalTree(ext.Data); extErr == nil {
				return rt, nil
			}
		}
		return nil, describe("ratchettree", err)
	}
	return rt, nil
}
