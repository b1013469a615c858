package mls_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto"
	"encoding/hex"
	"errors"
	"fmt"
	mathrand "math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mlskit/mls"
	"github.com/mlskit/mls/ciphersuite"
	"github.com/mlskit/mls/credential"
	"github.com/mlskit/mls/storage"
	"github.com/mlskit/mls/storage/memory"
	"github.com/mlskit/mls/storage/sqlite"
)

// The tests named TestStaleState... check the first invariant of
// DESIGN.md: one writer per group. However many handles or processes work
// on one stored group, no (epoch, sender, generation) ever carries two
// different messages (RFC 9420, Section 9.2: each key and nonce of a
// sender ratchet is used once), and a handle that another writer overtook
// gets ErrStaleState and writes nothing.

const staleSuite = mls.MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519

// keyUse names the key of one PrivateMessage.
type keyUse struct {
	epoch      uint64
	sender     uint32
	generation uint32
}

// witness is the third member: it decrypts every ciphertext produced and
// remembers which plaintext each key carried.
type witness struct {
	t    testing.TB
	g    *mls.Group
	seen map[keyUse]string
}

func newWitness(t testing.TB, g *mls.Group) *witness {
	return &witness{t: t, g: g, seen: map[keyUse]string{}}
}

// read decrypts m, which must succeed: a message whose key was used
// before would fail here as a replay, or be caught by the map.
func (w *witness) read(m *mls.Message) string {
	w.t.Helper()
	p, err := w.g.Process(context.Background(), roundTrip(w.t, m))
	if err != nil {
		w.t.Fatalf("witness: %v", err)
	}
	if p.Kind != mls.KindApplication {
		w.t.Fatalf("witness: got %v, want an application message", p.Kind)
	}
	k := keyUse{p.Epoch, p.Sender.Index, p.Generation}
	if prev, ok := w.seen[k]; ok {
		w.t.Fatalf("key (epoch %d, sender %d, generation %d) carried %q and %q", k.epoch, k.sender, k.generation, prev, p.ApplicationData)
	}
	w.seen[k] = string(p.ApplicationData)
	return string(p.ApplicationData)
}

// staleGroup is alice (whose state is in aliceStore) and bob (the witness)
// in a two-member group.
func staleGroup(t testing.TB, aliceStore storage.Store) (alice *client, bob *client) {
	t.Helper()
	ctx := context.Background()
	alice, bob = newClient(t, "alice", staleSuite), newClient(t, "bob", staleSuite)
	alice.store = aliceStore
	var err error
	if alice.group, err = clientOf(alice.store, alice.id).CreateGroup(ctx, staleSuite, mls.GroupConfig{JoinConfig: mls.JoinConfig{MaxPastEpochs: 3}}); err != nil {
		t.Fatal(err)
	}
	res, err := alice.group.AddMembers(ctx, bob.keyPackage(t, staleSuite))
	if err != nil {
		t.Fatal(err)
	}
	if err := alice.group.MergePendingCommit(ctx); err != nil {
		t.Fatal(err)
	}
	tree, err := alice.group.ExportRatchetTree()
	if err != nil {
		t.Fatal(err)
	}
	// The witness reads the messages in the order the test collects them,
	// not in the order of their generations.
	bob.join(t, res.Welcome, mls.JoinConfig{MaxPastEpochs: 3, SenderRatchet: mls.SenderRatchetConfig{OutOfOrderTolerance: 1000}}, tree)
	return alice, bob
}

func wantStale(t testing.TB, what string, err error) {
	t.Helper()
	if !errors.Is(err, mls.ErrStaleState) {
		t.Fatalf("%s: got %v, want ErrStaleState", what, err)
	}
}

// TestStaleStateTwoHandles: two handles on one storage/memory store, as two
// clients (or a retry after a timeout) would hold. The first to save wins;
// the other refuses everything until the group is loaded again.
func TestStaleStateTwoHandles(t *testing.T) {
	ctx := context.Background()
	store := memory.New()
	alice, bob := staleGroup(t, store)
	w := newWitness(t, bob.group)
	gid := alice.group.GroupID()

	h1, err := clientOf(store, alice.id).LoadGroup(ctx, gid)
	if err != nil {
		t.Fatal(err)
	}
	h2, err := clientOf(store, alice.id).LoadGroup(ctx, gid)
	if err != nil {
		t.Fatal(err)
	}
	if h1 == h2 {
		t.Fatal("two clients share one handle")
	}
	m1, err := h1.Seal(ctx, []byte("from h1"), nil)
	if err != nil {
		t.Fatal(err)
	}
	// h2 read the same state as h1: its next generation is the one h1
	// just used. Sealing must fail and return no ciphertext.
	m2, err := h2.Seal(ctx, []byte("from h2"), nil)
	wantStale(t, "second handle Seal", err)
	if m2 != nil {
		t.Fatal("a stale handle returned a ciphertext")
	}
	// Once stale, always stale: every operation is refused.
	_, err = h2.Seal(ctx, []byte("again"), nil)
	wantStale(t, "Seal after stale", err)
	_, err = h2.SelfUpdate(ctx)
	wantStale(t, "SelfUpdate after stale", err)
	_, err = h2.Process(ctx, m1)
	wantStale(t, "Process after stale", err)
	_, err = h2.ExportSecret("x", nil, 16)
	wantStale(t, "ExportSecret after stale", err)
	// The original handle is stale as well: h1 wrote after it loaded.
	_, err = alice.group.Seal(ctx, []byte("from the first handle"), nil)
	wantStale(t, "creator's handle", err)

	if got := w.read(m1); got != "from h1" {
		t.Fatalf("witness read %q", got)
	}
	// Reloading gives a handle that goes on from h1's state.
	h3, err := clientOf(store, alice.id).LoadGroup(ctx, gid)
	if err != nil {
		t.Fatal(err)
	}
	m3, err := h3.Seal(ctx, []byte("after reload"), nil)
	if err != nil {
		t.Fatal(err)
	}
	w.read(m3)
	// A commit from a stale handle is refused too, and writes nothing.
	_, err = h1.Seal(ctx, []byte("h1 is behind now"), nil)
	wantStale(t, "h1 after h3 wrote", err)
	if _, err := h1.SelfUpdate(ctx); !errors.Is(err, mls.ErrStaleState) {
		t.Fatalf("SelfUpdate on a stale handle: %v", err)
	}
	h4, err := clientOf(store, alice.id).LoadGroup(ctx, gid)
	if err != nil {
		t.Fatal(err)
	}
	if h4.PendingCommit() != nil {
		t.Fatal("a stale handle's commit was stored")
	}
}

// TestStaleStateOneClientOneHandle: within one Client, LoadGroup hands out
// the live handle, and concurrent use of it is serialised: many goroutines
// seal at once, and every message has a key of its own.
func TestStaleStateOneClientOneHandle(t *testing.T) {
	ctx := context.Background()
	store := memory.New()
	alice, bob := staleGroup(t, store)
	w := newWitness(t, bob.group)
	c := clientOf(store, alice.id)
	g1, err := c.LoadGroup(ctx, alice.group.GroupID())
	if err != nil {
		t.Fatal(err)
	}
	g2, err := c.LoadGroup(ctx, alice.group.GroupID())
	if err != nil {
		t.Fatal(err)
	}
	if g1 != g2 {
		t.Fatal("one Client handed out two handles for one group")
	}
	const n = 40
	msgs := make([]*mls.Message, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			m, err := g1.Seal(ctx, fmt.Appendf(nil, "message %d", i), nil)
			if err != nil {
				t.Error(err)
				return
			}
			msgs[i] = m
		})
	}
	wg.Wait()
	for i, m := range msgs {
		if m == nil {
			t.Fatalf("message %d was not sealed", i)
		}
		if got := w.read(m); got != fmt.Sprintf("message %d", i) {
			t.Fatalf("message %d read as %q", i, got)
		}
	}
	// A deleted group's handle refuses everything, and the group is gone.
	if err := c.DeleteGroup(ctx, alice.group.GroupID()); err != nil {
		t.Fatal(err)
	}
	if _, err := g1.Seal(ctx, []byte("after delete"), nil); !errors.Is(err, mls.ErrNotFound) {
		t.Fatalf("Seal after DeleteGroup: %v", err)
	}
	if _, err := c.LoadGroup(ctx, alice.group.GroupID()); !errors.Is(err, mls.ErrNotFound) {
		t.Fatalf("LoadGroup after DeleteGroup: %v", err)
	}
}

// TestStaleStateConcurrentHandles: several handles of several clients
// race on one store, each reloading when it finds itself stale. Every
// ciphertext that any of them returned is read by the witness with a key
// of its own.
func TestStaleStateConcurrentHandles(t *testing.T) {
	ctx := context.Background()
	store := memory.New()
	alice, bob := staleGroup(t, store)
	gid := alice.group.GroupID()
	const workers, each = 4, 25
	var mu sync.Mutex
	var out []*mls.Message
	stale := 0
	var wg sync.WaitGroup
	for k := range workers {
		wg.Go(func() {
			c := clientOf(store, alice.id)
			g, err := c.LoadGroup(ctx, gid)
			if err != nil {
				t.Error(err)
				return
			}
			deadline := time.Now().Add(20 * time.Second)
			for i := 0; i < each && time.Now().Before(deadline); {
				m, err := g.Seal(ctx, fmt.Appendf(nil, "worker %d message %d", k, i), nil)
				if errors.Is(err, mls.ErrStaleState) {
					mu.Lock()
					stale++
					mu.Unlock()
					if g, err = c.LoadGroup(ctx, gid); err != nil {
						t.Error(err)
						return
					}
					continue
				}
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				out = append(out, m)
				mu.Unlock()
				i++
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	w := newWitness(t, bob.group)
	for _, m := range out {
		w.read(m)
	}
	if len(out) != workers*each {
		t.Fatalf("%d messages sealed, want %d", len(out), workers*each)
	}
	t.Logf("%d messages from %d handles, %d stale saves refused", len(out), workers, stale)
}

// TestStaleStateRandomInterleaving plays random operations on three
// handles of one stored group and checks each against a model: an
// operation succeeds exactly when its handle has seen the latest stored
// state; otherwise it fails with ErrStaleState (or, for a message of an
// epoch the handle has not reached, with ErrFutureEpoch before anything is
// written).
func TestStaleStateRandomInterleaving(t *testing.T) {
	for seed := uint64(1); seed <= 4; seed++ {
		t.Run(fmt.Sprint("seed=", seed), func(t *testing.T) { staleInterleaving(t, seed) })
	}
}

func staleInterleaving(t *testing.T, seed uint64) {
	ctx := context.Background()
	store := memory.New()
	alice, bob := staleGroup(t, store)
	w := newWitness(t, bob.group)
	gid := alice.group.GroupID()
	rng := mathrand.New(mathrand.NewPCG(seed, 99))
	type handle struct {
		g     *mls.Group
		fresh bool // has seen the latest stored state
	}
	hs := make([]*handle, 3)
	load := func(i int) {
		g, err := clientOf(store, alice.id).LoadGroup(ctx, gid)
		if err != nil {
			t.Fatal(err)
		}
		hs[i] = &handle{g: g, fresh: true}
	}
	for i := range hs {
		load(i)
	}
	// wrote marks handle i as the only one that has seen the store.
	wrote := func(i int) {
		for j, h := range hs {
			h.fresh = j == i
		}
	}
	steps := 150
	if testing.Short() {
		steps = 60
	}
	var bobMsgs []*mls.Message
	for step := range steps {
		i := rng.IntN(len(hs))
		h := hs[i]
		what := fmt.Sprintf("step %d, handle %d", step, i)
		switch op := rng.IntN(10); {
		case op < 4: // seal
			m, err := h.g.Seal(ctx, fmt.Appendf(nil, "%d", step), nil)
			if !h.fresh {
				wantStale(t, what+": Seal", err)
				continue
			}
			if err != nil {
				t.Fatalf("%s: Seal: %v", what, err)
			}
			wrote(i)
			if got := w.read(m); got != fmt.Sprint(step) {
				t.Fatalf("%s: witness read %q", what, got)
			}
		case op < 6: // process a message from bob
			m, err := bob.group.Seal(ctx, fmt.Appendf(nil, "bob %d", step), nil)
			if err != nil {
				t.Fatal(err)
			}
			bobMsgs = append(bobMsgs, m)
			p, err := h.g.Process(ctx, roundTrip(t, m))
			if !h.fresh {
				// A handle that has not tried to write since it fell behind
				// may see the message as one of a future epoch first.
				if !errors.Is(err, mls.ErrFutureEpoch) {
					wantStale(t, what+": Process", err)
				}
				continue
			}
			if err != nil {
				t.Fatalf("%s: Process: %v", what, err)
			}
			if string(p.ApplicationData) != fmt.Sprintf("bob %d", step) {
				t.Fatalf("%s: read %q", what, p.ApplicationData)
			}
			wrote(i)
		case op < 7: // commit and merge
			res, err := h.g.SelfUpdate(ctx)
			if !h.fresh {
				wantStale(t, what+": SelfUpdate", err)
				continue
			}
			if err != nil {
				t.Fatalf("%s: SelfUpdate: %v", what, err)
			}
			if err := h.g.MergePendingCommit(ctx); err != nil {
				t.Fatalf("%s: merge: %v", what, err)
			}
			wrote(i)
			bob.processCommit(t, res.Commit)
		default: // reload
			load(i)
		}
	}
	// Whichever handle is fresh can still read; the witness saw every
	// message's key once (it failed above otherwise).
	t.Logf("seed %d: %d keys used by alice's handles, %d messages from bob", seed, len(w.seen), len(bobMsgs))
}

// TestStaleStateProcesses: two OS processes seal and process on one SQLite
// file at the same time. Each reloads when it finds itself stale. The
// parent, as the witness, reads every ciphertext either of them printed.
func TestStaleStateProcesses(t *testing.T) {
	if os.Getenv("MLS_STALE_CHILD") != "" {
		staleChild()
		return
	}
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "alice.db")
	store, err := sqlite.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	alice, bob := staleGroup(t, store)
	gid := alice.group.GroupID()
	// Messages from bob, for the children to process.
	const fromBob = 12
	var lines []string
	for i := range fromBob {
		m, err := bob.group.Seal(ctx, fmt.Appendf(nil, "bob %d", i), nil)
		if err != nil {
			t.Fatal(err)
		}
		b, err := m.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		lines = append(lines, hex.EncodeToString(b))
	}
	bobFile := filepath.Join(dir, "bob.txt")
	if err := os.WriteFile(bobFile, []byte(strings.Join(lines, "\n")), 0o600); err != nil {
		t.Fatal(err)
	}
	// The children load alice's signature key from the test's key file.
	keyFile := filepath.Join(dir, "alice.key")
	priv, err := marshalSigner(alice.id)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, priv, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := store.Close(); err != nil {
		t.Fatal(err)
	}

	const seals = 15
	type result struct {
		out []byte
		err error
	}
	results := make([]result, 2)
	var wg sync.WaitGroup
	for k := range results {
		wg.Go(func() {
			cctx, cancel := context.WithTimeout(ctx, 90*time.Second)
			defer cancel()
			cmd := exec.CommandContext(cctx, os.Args[0], "-test.run=^TestStaleStateProcesses$")
			cmd.Env = append(os.Environ(), "MLS_STALE_CHILD=1", "MLS_STALE_DB="+path, "MLS_STALE_KEY="+keyFile,
				"MLS_STALE_BOB="+bobFile, "MLS_STALE_GID="+hex.EncodeToString(gid), "MLS_STALE_NAME="+strconv.Itoa(k), "MLS_STALE_SEALS="+strconv.Itoa(seals))
			out, err := cmd.Output()
			results[k] = result{out, err}
		})
	}
	wg.Wait()
	w := newWitness(t, bob.group)
	read := map[int]int{}
	staleTotal, sealed := 0, 0
	for k, r := range results {
		if r.err != nil {
			t.Fatalf("child %d: %v\n%s", k, r.err, r.out)
		}
		sc := bufio.NewScanner(bytes.NewReader(r.out))
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			if len(f) < 2 {
				continue
			}
			switch f[0] {
			case "sealed":
				b, err := hex.DecodeString(f[1])
				if err != nil {
					t.Fatal(err)
				}
				m, err := mls.ParseMessage(b)
				if err != nil {
					t.Fatal(err)
				}
				want := strings.Join(f[2:], " ")
				if got := w.read(m); got != want {
					t.Fatalf("child %d sealed %q, witness read %q", k, want, got)
				}
				sealed++
			case "read":
				j, _ := strconv.Atoi(f[1])
				read[j]++
				if read[j] > 1 {
					t.Fatalf("bob's message %d was read by both processes", j)
				}
			case "stale":
				staleTotal++
			}
		}
	}
	if sealed != 2*seals {
		t.Fatalf("%d messages sealed, want %d", sealed, 2*seals)
	}
	t.Logf("2 processes: %d messages sealed, %d of bob's %d read, %d stale saves refused", sealed, len(read), fromBob, staleTotal)
}

// staleChild is one process of TestStaleStateProcesses: it seals its
// messages and processes bob's, printing what it produced and read.
func staleChild() {
	ctx := context.Background()
	fail := func(err error) {
		fmt.Println("error", err)
		os.Exit(1)
	}
	store, err := sqlite.Open(os.Getenv("MLS_STALE_DB"))
	if err != nil {
		fail(err)
	}
	defer store.Close()
	priv, err := os.ReadFile(os.Getenv("MLS_STALE_KEY"))
	if err != nil {
		fail(err)
	}
	signer, err := unmarshalSigner(priv)
	if err != nil {
		fail(err)
	}
	c, err := mls.NewClient(ctx, store, credential.NewBasic([]byte("alice")), signer, credential.AcceptAll, mls.ClientOptions{})
	if err != nil {
		fail(err)
	}
	gid, _ := hex.DecodeString(os.Getenv("MLS_STALE_GID"))
	raw, err := os.ReadFile(os.Getenv("MLS_STALE_BOB"))
	if err != nil {
		fail(err)
	}
	var bobMsgs []*mls.Message
	for _, l := range strings.Split(string(raw), "\n") {
		b, _ := hex.DecodeString(l)
		m, err := mls.ParseMessage(b)
		if err != nil {
			fail(err)
		}
		bobMsgs = append(bobMsgs, m)
	}
	name := os.Getenv("MLS_STALE_NAME")
	seals, _ := strconv.Atoi(os.Getenv("MLS_STALE_SEALS"))
	g, err := c.LoadGroup(ctx, gid)
	if err != nil {
		fail(err)
	}
	rng := mathrand.New(mathrand.NewPCG(uint64(len(name)), uint64(name[0])))
	deadline := time.Now().Add(60 * time.Second)
	for i := 0; i < seals && time.Now().Before(deadline); {
		var err error
		if j := rng.IntN(len(bobMsgs) + seals); j < len(bobMsgs) {
			var p *mls.Processed
			p, err = g.Process(ctx, bobMsgs[j])
			if err == nil {
				fmt.Println("read", j, string(p.ApplicationData))
			} else if errors.Is(err, mls.ErrDecrypt) || errors.Is(err, mls.ErrReplayed) || errors.Is(err, mls.ErrValidation) {
				err = nil // read already, by this process or the other
			}
		} else {
			text := fmt.Sprintf("process %s message %d", name, i)
			var m *mls.Message
			m, err = g.Seal(ctx, []byte(text), nil)
			if err == nil {
				b, err := m.MarshalBinary()
				if err != nil {
					fail(err)
				}
				fmt.Println("sealed", hex.EncodeToString(b), text)
				i++
			}
		}
		if errors.Is(err, mls.ErrStaleState) {
			fmt.Println("stale", name)
			if g, err = c.LoadGroup(ctx, gid); err != nil {
				fail(err)
			}
			continue
		}
		if err != nil {
			fail(err)
		}
	}
}

func marshalSigner(id mls.Identity) ([]byte, error) {
	s, err := ciphersuite.Lookup(staleSuite)
	if err != nil {
		return nil, err
	}
	return s.MarshalSigner(id.Signer)
}

func unmarshalSigner(b []byte) (crypto.Signer, error) {
	s, err := ciphersuite.Lookup(staleSuite)
	if err != nil {
		return nil, err
	}
	return s.NewSigner(b)
}
