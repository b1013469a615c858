package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"time"

	"connectrpc.com/connect"

	pb "github.com/mlskit/mls/proto/mlsclient"
	"github.com/mlskit/mls/proto/mlsclient/mlsclientconnect"
)

// This file runs one script of an interop config (test-config.md of the
// MLS working group's harness) against live clients.

// step is one action of a script; the fields of every action type are
// read from the same object.
type scriptStep struct {
	Action string `json:"action"`
	Actor  string `json:"actor"`

	Members     []string    `json:"members"`
	Joiners     []string    `json:"joiners"`
	Joiner      string      `json:"joiner"`
	Welcome     int         `json:"welcome"`
	KeyPackage  int         `json:"keyPackage"`
	Removed     string      `json:"removed"`
	PSKID       int         `json:"pskID"`
	EpochID     uint64      `json:"epochID"`
	Extensions  []extension `json:"extensions"`
	ByReference []int       `json:"byReference"`
	ByValue     []proposal  `json:"byValue"`
	Commit      int         `json:"commit"`
	Clients     []string    `json:"clients"`
	PSKs        []int       `json:"psks"`
	RemovePrior bool        `json:"removePrior"`
	Ciphertext  int         `json:"ciphertext"`
	AAD         string      `json:"authenticatedData"`
	Plaintext   string      `json:"plaintext"`
	Signer      string      `json:"signer"`
	Member      string      `json:"member"`
	Description *proposal   `json:"description"`

	// Both spellings occur in the official configs.
	ForcePath     bool `json:"force_path"`
	ForcePath2    bool `json:"forcePath"`
	ExternalTree  bool `json:"external_tree"`
	ExternalTree2 bool `json:"externalTree"`

	Proposer          string `json:"proposer"`
	Committer         string `json:"committer"`
	Welcomer          string `json:"welcomer"`
	ChangeCipherSuite bool   `json:"changeCiphersuite"`
	ChangeGroupID     bool   `json:"changeGroupID"`
	ExternalReInit    int    `json:"externalReinitProposal"`

	raw json.RawMessage
}

func (s *scriptStep) forcePath() bool    { return s.ForcePath || s.ForcePath2 }
func (s *scriptStep) externalTree() bool { return s.ExternalTree || s.ExternalTree2 }

type extension struct {
	Type uint32 `json:"extension_type"`
	Data []byte `json:"extension_data"`
}

type proposal struct {
	Type              string      `json:"proposalType"`
	KeyPackage        int         `json:"keyPackage"`
	Removed           string      `json:"removed"`
	PSKID             int         `json:"pskID"`
	EpochID           uint64      `json:"epochID"`
	Extensions        []extension `json:"extensions"`
	ChangeGroupID     bool        `json:"changeGroupID"`
	ChangeCipherSuite bool        `json:"changeCipherSuite"`
}

type script []scriptStep

func (s *script) UnmarshalJSON(b []byte) error {
	var raws []json.RawMessage
	if err := json.Unmarshal(b, &raws); err != nil {
		return err
	}
	*s = make(script, len(raws))
	for i, r := range raws {
		if err := json.Unmarshal(r, &(*s)[i]); err != nil {
			return fmt.Errorf("step %d: %w", i, err)
		}
		if (*s)[i].Action == "" {
			return fmt.Errorf("step %d: no action", i)
		}
		(*s)[i].raw = r
	}
	return nil
}

// actors lists the script's actors in order of first appearance.
func (s script) actors() []string {
	var out []string
	seen := map[string]bool{}
	add := func(names ...string) {
		for _, n := range names {
			if n != "" && !seen[n] {
				seen[n] = true
				out = append(out, n)
			}
		}
	}
	for _, st := range s {
		add(st.Actor)
		add(st.Members...)
		add(st.Joiners...)
		add(st.Joiner, st.Signer, st.Member, st.Proposer, st.Committer, st.Welcomer)
		add(st.Clients...)
	}
	return out
}

// rpcClient is one live interop client.
type rpcClient struct {
	addr   string
	name   string
	suites map[uint32]bool
	rpc    mlsclientconnect.MLSClientClient
}

// stepError is a failed script: where and why.
type stepError struct {
	Step   int    `json:"step"`
	Action string `json:"action"`
	Actor  string `json:"actor,omitempty"`
	Client string `json:"client,omitempty"`
	RPC    string `json:"rpc,omitempty"`
	Err    string `json:"error"`
}

func (e *stepError) Error() string {
	s := fmt.Sprintf("step %d (%s)", e.Step, e.Action)
	if e.RPC != "" {
		s += fmt.Sprintf(": %s on %s at %s", e.RPC, e.Actor, e.Client)
	}
	return s + ": " + e.Err
}

// run is one execution of a script: a suite, a framing, and an assignment
// of clients to actors.
type scriptRun struct {
	ctx     context.Context
	timeout time.Duration
	suite   uint32
	encrypt bool
	clients map[string]*rpcClient

	state   map[string]uint32
	tx      map[string]uint32
	signer  map[string]uint32
	out     []map[string][]byte // per step: named outputs
	groupID []byte
	checks  int

	cur *stepError // the step being run, for RPC errors
}

// do calls one RPC of actor's client, naming it in a failure.
func do[Q, R any](r *scriptRun, actor, name string, f func(mlsclientconnect.MLSClientClient, context.Context, *connect.Request[Q]) (*connect.Response[R], error), req *Q) (*R, error) {
	c := r.clients[actor]
	if c == nil {
		return nil, fmt.Errorf("no client for actor %q", actor)
	}
	ctx, cancel := context.WithTimeout(r.ctx, r.timeout)
	defer cancel()
	resp, err := f(c.rpc, ctx, connect.NewRequest(req))
	if err != nil {
		r.cur.RPC, r.cur.Actor, r.cur.Client = name, actor, c.name+"@"+c.addr
		return nil, err
	}
	return resp.Msg, nil
}

func (r *scriptRun) get(i int, key string) ([]byte, error) {
	if i < 0 || i >= len(r.out) {
		return nil, fmt.Errorf("reference to step %d outside the script", i)
	}
	v, ok := r.out[i][key]
	if !ok {
		return nil, fmt.Errorf("step %d produced no %s", i, key)
	}
	return v, nil
}

func (r *scriptRun) stateOf(actor string) (uint32, error) {
	id, ok := r.state[actor]
	if !ok {
		return 0, fmt.Errorf("actor %q has no group state", actor)
	}
	return id, nil
}

// runScript runs every step, then frees every state. It returns the number
// of checkpoints passed, or the first failure.
func (r *scriptRun) runScript(s script) (int, *stepError) {
	r.state, r.tx, r.signer = map[string]uint32{}, map[string]uint32{}, map[string]uint32{}
	r.out = make([]map[string][]byte, len(s))
	for i := range r.out {
		r.out[i] = map[string][]byte{}
	}
	var failed *stepError
	for i := range s {
		r.cur = &stepError{Step: i, Action: s[i].Action}
		if err := r.step(i, &s[i]); err != nil {
			r.cur.Err = err.Error()
			failed = r.cur
			break
		}
	}
	for _, a := range slices.Sorted(maps.Keys(r.state)) {
		r.cur = &stepError{Step: len(s), Action: "free"}
		if _, err := do(r, a, "Free", mlsclientconnect.MLSClientClient.Free, &pb.FreeRequest{StateId: r.state[a]}); err != nil && failed == nil {
			r.cur.Err = err.Error()
			failed = r.cur
		}
	}
	return r.checks, failed
}

func exts(in []extension) []*pb.Extension {
	out := make([]*pb.Extension, len(in))
	for i, e := range in {
		out[i] = &pb.Extension{ExtensionType: e.Type, ExtensionData: e.Data}
	}
	return out
}

// describe turns a config proposal into the RPC's ProposalDescription.
func (r *scriptRun) describe(p *proposal) (*pb.ProposalDescription, error) {
	d := &pb.ProposalDescription{ProposalType: []byte(p.Type)}
	var err error
	switch p.Type {
	case "add":
		d.KeyPackage, err = r.get(p.KeyPackage, "key_package")
	case "remove":
		d.RemovedId = []byte(p.Removed)
	case "externalPSK":
		d.PskId, err = r.get(p.PSKID, "psk_id")
	case "resumptionPSK":
		d.EpochId = p.EpochID
	case "groupContextExtensions":
		d.Extensions = exts(p.Extensions)
	case "reinit":
		d.Extensions = exts(p.Extensions)
		if p.ChangeCipherSuite {
			if err := r.changeSuite(); err != nil {
				return nil, err
			}
		}
		d.CipherSuite = r.suite
		d.GroupId = r.newGroupID(p.ChangeGroupID)
	default:
		err = fmt.Errorf("unknown proposal type %q", p.Type)
	}
	return d, err
}

func (r *scriptRun) newGroupID(change bool) []byte {
	id := bytes.Clone(r.groupID)
	if change {
		id = append(id, "++"...)
	}
	return id
}

// changeSuite moves the run to the lowest other suite every client
// supports.
func (r *scriptRun) changeSuite() error {
	for _, s := range supportedSuitesAll {
		if s == r.suite {
			continue
		}
		ok := true
		for _, c := range r.clients {
			ok = ok && c.suites[s]
		}
		if ok {
			r.suite = s
			return nil
		}
	}
	return fmt.Errorf("no other cipher suite that every client supports")
}

var supportedSuitesAll = []uint32{1, 2, 3, 4, 5, 6, 7}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

// checkpoint compares the state authenticators and an exported secret of
// actors, which must all be in the same epoch of the same group, with each
// other and with want (an epoch authenticator a step returned).
func (r *scriptRun) checkpoint(want []byte, actors ...string) error {
	var auth, secret []byte
	ctxt := []byte("checkpoint")
	for _, a := range actors {
		id, err := r.stateOf(a)
		if err != nil {
			return err
		}
		sa, err := do(r, a, "StateAuth", mlsclientconnect.MLSClientClient.StateAuth, &pb.StateAuthRequest{StateId: id})
		if err != nil {
			return err
		}
		ex, err := do(r, a, "Export", mlsclientconnect.MLSClientClient.Export, &pb.ExportRequest{StateId: id, Label: "mls interop", Context: ctxt, KeyLength: 32})
		if err != nil {
			return err
		}
		if len(sa.StateAuthSecret) == 0 || len(ex.ExportedSecret) != 32 {
			return fmt.Errorf("checkpoint: %s returned a state authenticator of %d bytes and an exported secret of %d", a, len(sa.StateAuthSecret), len(ex.ExportedSecret))
		}
		if want != nil && !bytes.Equal(sa.StateAuthSecret, want) {
			return fmt.Errorf("checkpoint: %s's state authenticator %x differs from the epoch authenticator %x", a, sa.StateAuthSecret, want)
		}
		if auth == nil {
			auth, secret = sa.StateAuthSecret, ex.ExportedSecret
			continue
		}
		if !bytes.Equal(auth, sa.StateAuthSecret) {
			return fmt.Errorf("checkpoint: %s's state authenticator %x differs from %s's %x", a, sa.StateAuthSecret, actors[0], auth)
		}
		if !bytes.Equal(secret, ex.ExportedSecret) {
			return fmt.Errorf("checkpoint: %s's exported secret %x differs from %s's %x", a, ex.ExportedSecret, actors[0], secret)
		}
	}
	r.checks++
	return nil
}
