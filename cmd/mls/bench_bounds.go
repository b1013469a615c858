package main

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/sha512"
	"fmt"
	"math/bits"
	"runtime"
	"slices"
	"time"

	"github.com/mlskit/mls/ciphersuite"
)

// primitives are the measured costs, in seconds (per operation, or per
// byte for the *B fields), of the suite's primitives on this machine in
// this run.
type primitives struct {
	seal, open, derive float64 // HPKE EncryptWithLabel / DecryptWithLabel of a path secret, DeriveKeyPair
	sign, verify       float64 // SignWithLabel / VerifyWithLabel of 64 bytes
	hmac               float64 // HMAC-SHA256 of 64 bytes: stands for every small hash and KDF step
	aeadSmall          float64 // AES-128-GCM seal of 64 bytes
	sha256B, sha512B   float64 // per byte, hashing 1 MiB
	aeadB              float64 // per byte, AES-128-GCM seal of 1 MiB
}

func (p *primitives) String() string {
	us := func(s float64) string { return fmt.Sprintf("%.1fus", s*1e6) }
	mbs := func(perByte float64) string { return fmt.Sprintf("%.0fMB/s", 1/perByte/1e6) }
	return fmt.Sprintf("HPKE seal %s open %s derive %s, sign %s verify %s, HMAC %s, SHA-256 %s, SHA-512 %s, AES-GCM %s",
		us(p.seal), us(p.open), us(p.derive), us(p.sign), us(p.verify), us(p.hmac), mbs(p.sha256B), mbs(p.sha512B), mbs(p.aeadB))
}

// minWith keeps, for each primitive, the lower of p's and o's costs.
func (p *primitives) minWith(o *primitives) {
	for _, f := range [][2]*float64{{&p.seal, &o.seal}, {&p.open, &o.open}, {&p.derive, &o.derive}, {&p.sign, &o.sign},
		{&p.verify, &o.verify}, {&p.hmac, &o.hmac}, {&p.aeadSmall, &o.aeadSmall}, {&p.sha256B, &o.sha256B},
		{&p.sha512B, &o.sha512B}, {&p.aeadB, &o.aeadB}} {
		*f[0] = min(*f[0], *f[1])
	}
}

// timeOp returns the time of one call of f in the fastest of 5 batches of
// about 20 ms each.
func timeOp(f func()) float64 {
	f()
	k := 1
	for {
		t0 := time.Now()
		for range k {
			f()
		}
		if d := time.Since(t0); d > 20*time.Millisecond || k >= 1<<20 {
			break
		}
		k *= 2
	}
	var per []float64
	for range 5 {
		t0 := time.Now()
		for range k {
			f()
		}
		per = append(per, time.Since(t0).Seconds()/float64(k))
	}
	slices.Sort(per)
	return per[0] // the least contended batch: a bound is a floor
}

func measurePrimitives(s *ciphersuite.Suite) *primitives {
	p := &primitives{}
	priv, pub, err := s.DeriveKeyPair(make([]byte, 32))
	if err != nil {
		panic(err)
	}
	secret := make([]byte, 32)
	kem, ct, err := s.EncryptWithLabel(pub, "UpdatePathNode", []byte("context"), secret)
	if err != nil {
		panic(err)
	}
	p.seal = timeOp(func() { s.EncryptWithLabel(pub, "UpdatePathNode", []byte("context"), secret) })
	p.open = timeOp(func() { s.DecryptWithLabel(priv, "UpdatePathNode", []byte("context"), kem, ct) })
	p.derive = timeOp(func() { s.DeriveKeyPair(secret) })
	signer, err := s.GenerateSignatureKey(nil)
	if err != nil {
		panic(err)
	}
	spub, _ := s.SignaturePublicKey(signer)
	msg := make([]byte, 64)
	sig, _ := s.SignWithLabel(signer, "bench", msg)
	p.sign = timeOp(func() { s.SignWithLabel(signer, "bench", msg) })
	p.verify = timeOp(func() { s.VerifyWithLabel(spub, "bench", msg, sig) })
	p.hmac = timeOp(func() { hmac.New(sha256.New, secret).Write(msg) })
	key := make([]byte, s.AEADKeySize())
	nonce := make([]byte, s.AEADNonceSize())
	p.aeadSmall = timeOp(func() { s.Seal(key, nonce, nil, msg) })
	big := make([]byte, 1<<20)
	p.sha256B = timeOp(func() { sha256.Sum256(big) }) / float64(len(big))
	p.sha512B = timeOp(func() { sha512.Sum512(big) }) / float64(len(big))
	p.aeadB = timeOp(func() { s.Seal(key, nonce, nil, big) }) / float64(len(big))
	return p
}

// groupShape is what an operation's bound depends on.
type groupShape struct {
	n           int
	fresh       bool
	treeBytes   int // the encoded ratchet tree
	commitBytes int // a self-update commit
	seals       int // HPKE encryptions in the measured commit's path, 0 if not counted
}

// bound returns the least time, in seconds, that RFC 9420 makes the party
// spend on op: its primitive operations and the bytes it must hash, sign,
// MAC or encrypt, with the work the RFC lets run in parallel (encryptions
// to the copath, a joiner's checks of the leaves) spread over the cores.
// Encoding, decoding, allocation and storage are not counted: the bound is
// below what any implementation can reach.
func (p *primitives) bound(op string, g groupShape) float64 {
	cores := float64(runtime.GOMAXPROCS(0))
	n := float64(g.n)
	d := float64(bits.Len(uint(g.n - 1))) // the filtered direct path of a full tree
	// Key schedule, secret tree, tree and parent hashes along the path,
	// transcript hashes: a few dozen small hashes.
	small := (2*d + 20) * p.hmac
	T := float64(g.treeBytes)
	B := float64(g.commitBytes)
	sign := func(bytes float64) float64 { return p.sign + 2*bytes*p.sha512B } // Ed25519 hashes the message twice
	verify := func(bytes float64) float64 { return p.verify + bytes*p.sha512B }
	// A path encrypts the path secret to the resolution of each copath
	// node: log N nodes in a full tree, every other member in a fresh one.
	// A removal blanks the removed leaf's direct path, so the copath node
	// above it resolves to the non-blank subtrees along that path (25
	// encryptions instead of 17 when leaf 99,999 of 100,000 goes): where
	// the commit was measured, the count is taken from it.
	enc := d
	if g.fresh {
		enc = n - 1
	}
	if g.seals > 0 {
		enc = float64(g.seals)
	}
	// overlap is the least time of a sequential pass a and of other work
	// b that may run beside it on the other cores: the signature over an
	// O(N)-byte commit is one SHA-512 stream, while the membership tag and
	// the transcript hash over the same bytes are independent of it.
	overlap := func(a, b float64) float64 { return max(a, (a+b)/cores) }
	// Creating a commit with a path: new leaf and path keys, the
	// encryptions, the leaf and commit signatures and the GroupInfo's,
	// the membership tag and confirmed transcript hash over the commit.
	path := enc*p.seal/cores + (d+1)*p.derive + 2*p.sign + overlap(sign(B), 2*B*p.sha256B) + small
	switch op {
	case "update", "remove":
		return path
	case "process":
		// The commit signature, membership tag and transcript hash over
		// the commit, one HPKE decryption, the new leaf's signature, the
		// derivation of the keys from the common ancestor up (one for a
		// receiver in the other half of the tree).
		return overlap(verify(B), 2*B*p.sha256B) + p.open + p.derive + p.verify + small
	case "add", "addtree":
		// Key package and leaf signatures, the commit's and the Welcome
		// GroupInfo's signatures, one HPKE encryption of the group secrets,
		// the GroupInfo's encryption.
		b := 2*p.verify + 2*p.sign + p.seal + p.aeadSmall + small
		if op == "addtree" {
			// The tree in the signed and encrypted GroupInfo, and in the
			// context of the joiner's EncryptWithLabel (RFC 9420, Section
			// 12.4.3.1), which HPKE hashes (RFC 9180, Section 5.1): one
			// after the other, since each needs the one before.
			b += 2*T*p.sha512B + T*p.aeadB + T*p.sha256B
		}
		return b
	case "join":
		// Open the group secrets, decrypt and verify the GroupInfo with
		// the tree, and verify every leaf signature, every parent hash
		// and the tree hash over the whole tree on all cores; the leaf
		// checks need not wait for the GroupInfo signature.
		return p.open + T*p.aeadB + overlap(verify(T), n*p.verify+T*p.sha256B+3*n*p.hmac) + small
	case "seal", "open":
		// One signature, the sender data and content encryption of 1 KB,
		// the ratchet steps.
		b := 2*p.aeadSmall + 1024*p.aeadB + 4*p.hmac
		if op == "seal" {
			return b + p.sign
		}
		return b + p.verify
	case "load":
		// Checking the stored tree against its hash: the tree hash over
		// the whole tree, on all cores.
		return (T*p.sha256B + 2*n*p.hmac) / cores
	}
	return 0
}
