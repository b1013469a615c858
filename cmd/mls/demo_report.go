package main

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/mlskit/mls"
)

// What the members of the demo see and how long it took: the narration,
// the agreement table after each step, and the timings of -members.

// describeCommit says what a received commit does, from the receiver's
// point of view (OpenMLS's "Interpreting remove operations").
func describeCommit(m *member, p *mls.Processed) string {
	from := string(p.Credential.Identity())
	name := func(leaf uint32) string {
		mem, _ := m.group.Member(leaf)
		return string(mem.Credential.Identity())
	}
	var parts []string
	for _, q := range p.Commit.Proposals() {
		switch q.Type() {
		case mls.ProposalAdd:
			c, _ := q.AddedCredential()
			parts = append(parts, string(c.Identity())+" added")
		case mls.ProposalUpdate:
			who := name(q.Sender().Index) + "'s"
			if q.Sender().Index == m.group.OwnLeafIndex() {
				who = "my"
			}
			parts = append(parts, who+" update applied")
		case mls.ProposalRemove:
			op, err := mls.NewRemoveOperation(q, m.group)
			check(err, "%s: interpreting a removal", m.name)
			if op.Kind == mls.WeWereRemovedBy {
				return fmt.Sprintf("%s's commit: it removes me (I was removed by %s) and I become inactive.", from, name(op.By.Index))
			}
			parts = append(parts, fmt.Sprintf("%s removed by %s", name(op.Removed), name(op.By.Index)))
		}
	}
	if len(parts) == 0 {
		parts = append(parts, fmt.Sprintf("new keys for %s's leaf and path", from))
	}
	return fmt.Sprintf("%s's commit: %s; epoch %d.", from, strings.Join(parts, ", "), p.Commit.Epoch())
}

// --- What the members see ----------------------------------------------------

func (d *demo) header(title string) {
	if d.steps++; d.steps > 1 {
		fmt.Fprintln(d.out)
	}
	line := fmt.Sprintf("== Step %d: %s ", d.steps, title)
	fmt.Fprintln(d.out, line+strings.Repeat("=", max(0, 78-len(line))))
}

func (d *demo) say(format string, args ...any) { fmt.Fprintf(d.out, "  "+format+"\n", args...) }

// refused reports the error of a read that must fail.
func (d *demo) refused(err error, what string) {
	if err == nil {
		failf("SECURITY: a removed member read a message of the group (%s)", what)
	}
	d.say("%s: %v", what, err)
}

// view is what one member believes about the group.
type view struct {
	name  string
	leaf  uint32
	epoch uint64
	auth  []byte // epoch authenticator, RFC 9420, Section 8.7
}

func (m *member) view() view {
	return view{m.name, m.group.OwnLeafIndex(), m.group.Epoch(), m.group.EpochAuthenticator()}
}

// checkAgreement returns an error for the first member whose epoch or epoch
// authenticator differs from the first member's. Equal authenticators mean
// equal epoch secrets, hence the same group state (RFC 9420, Section 8.7).
func checkAgreement(views []view) error {
	for _, v := range views[min(1, len(views)):] {
		if a := views[0]; v.epoch != a.epoch {
			return fmt.Errorf("members disagree: %s is at epoch %d, %s at epoch %d", a.name, a.epoch, v.name, v.epoch)
		} else if !bytes.Equal(v.auth, a.auth) {
			return fmt.Errorf("members disagree: %s and %s are both at epoch %d but their epoch authenticators differ (%s vs %s)",
				a.name, v.name, a.epoch, short(a.auth), short(v.auth))
		}
	}
	return nil
}

// agree prints every member's epoch and authenticator, the story's
// characters one by one and the others together, and stops the story if
// two active members disagree. It returns the active members' views.
func (d *demo) agree() []view {
	fmt.Fprintf(d.out, "\n  %-12s %5s %6s  %s\n", "member", "leaf", "epoch", "authenticator")
	row := func(name, leaf string, epoch uint64, auth string) {
		fmt.Fprintf(d.out, "  %-12s %5s %6d  %s\n", name, leaf, epoch, auth)
	}
	var views []view // of the active members, Alice first
	same, differ := 0, 0
	for _, m := range d.members {
		if m.group == nil {
			continue
		}
		v := m.view()
		switch {
		case !m.group.IsActive():
			row(m.name, "-", v.epoch, "(removed)")
			continue
		case m.named():
			row(m.name, strconv.Itoa(int(v.leaf)), v.epoch, short(v.auth))
		case checkAgreement([]view{views[0], v}) == nil:
			same++
		default:
			if differ++; differ <= 5 {
				row(m.name, "", v.epoch, short(v.auth)+"  (differs)")
			}
		}
		views = append(views, v)
	}
	if same > 0 {
		note := "  (all the same)"
		if differ > 0 {
			note = "  (same as Alice)"
		}
		row(fmt.Sprintf("%d others", same), "", views[0].epoch, short(views[0].auth)+note)
	}
	fmt.Fprintf(d.out, "  members (%d): %s\n", len(d.alice.group.Members()), memberList(d.alice.group.Members()))
	if err := checkAgreement(views); err != nil {
		fmt.Fprintf(d.out, "  FAIL: %v\n", err)
		panic(failure{err})
	}
	if len(views) == 1 {
		fmt.Fprintf(d.out, "  OK: %s is the only member, at epoch %d.\n", views[0].name, views[0].epoch)
	} else {
		fmt.Fprintf(d.out, "  OK: all %d active members agree on epoch %d and authenticator %s.\n", len(views), views[0].epoch, short(views[0].auth))
	}
	return views
}

// short is the first 4 bytes of an authenticator or key in hex: enough to
// compare them by eye.
func short(b []byte) string { return hex.EncodeToString(b[:min(4, len(b))]) }

// memberList names the members, eliding the middle of a long list.
func memberList(ms []mls.Member) string {
	var names []string
	for _, m := range ms {
		names = append(names, string(m.Credential.Identity()))
	}
	if len(names) > 8 {
		names = append(names[:5:5], "...", names[len(names)-1])
	}
	return strings.Join(names, ", ")
}

// --- Timings -----------------------------------------------------------------

// timings holds the durations of each kind of operation, in the order the
// kinds first ran.
type timings struct {
	ops []string
	of  map[string][]time.Duration
}

func (t *timings) add(op string, dur time.Duration) {
	if _, ok := t.of[op]; !ok {
		t.ops = append(t.ops, op)
	}
	if t.of == nil {
		t.of = map[string][]time.Duration{}
	}
	t.of[op] = append(t.of[op], dur)
}

// timed runs f and adds its duration to op's.
func timed[T any](d *demo, op string, f func() (T, error)) (T, error) {
	defer func(start time.Time) { d.times.add(op, time.Since(start)) }(time.Now())
	return f()
}

func (t *timings) print(w io.Writer, n int, suite mls.CipherSuite) {
	fmt.Fprintf(w, "\nTimings with up to N=%d members, suite %v (wall clock, one run):\n", n, suite)
	fmt.Fprintf(w, "  %-34s %6s %12s %12s\n", "operation", "count", "mean", "max")
	for _, op := range t.ops {
		var total time.Duration
		for _, dur := range t.of[op] {
			total += dur
		}
		fmt.Fprintf(w, "  %-34s %6d %12v %12v\n", op, len(t.of[op]), round(total/time.Duration(len(t.of[op]))), round(slices.Max(t.of[op])))
	}
	fmt.Fprintln(w, "  add and join times grow with the group; the story's later steps run at full size.")
}

// round keeps three significant digits.
func round(d time.Duration) time.Duration {
	for r := time.Duration(1); r < time.Hour; r *= 10 {
		if d < 1000*r {
			return d.Round(r)
		}
	}
	return d
}
