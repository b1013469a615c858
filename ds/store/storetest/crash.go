package storetest

import (
	"bufio"
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/mlskit/mls/ds"
)

// CrashChildEnv is set in the environment of the child process of
// CrashTest; its value is the hex of the group ID to append to.
const CrashChildEnv = "MLSD_STORE_CRASH_CHILD"

// AppendUntilKilled is the child's side of CrashTest: it appends
// application messages to groupID, and after each one the Store
// acknowledged writes "counter seq" to w, until it is killed (or, as a
// bound, for a minute or a million messages).
func AppendUntilKilled(ctx context.Context, s ds.Store, groupID []byte, w io.Writer) error {
	g, err := s.GetGroup(ctx, groupID)
	if err != nil {
		return err
	}
	deadline := time.Now().Add(time.Minute)
	for i := 0; i < 1_000_000 && time.Now().Before(deadline); i++ {
		e := ds.Entry{GroupID: groupID, Epoch: g.State.Epoch, Kind: ds.KindApplication, Sender: []byte("crash"), Data: fmt.Appendf(nil, "crash-%d-%d", os.Getpid(), i), Received: base}
		seq, err := s.Append(ctx, e)
		if err != nil {
			return err
		}
		if _, err := fmt.Fprintf(w, "%d %d\n", i, seq); err != nil {
			return err
		}
	}
	return nil
}

// CrashTest checks that a process killed (SIGKILL) while appending loses
// none of the messages the Store acknowledged and leaves a log without
// gaps, for rounds rounds of kill and reopen. child returns the command
// that runs the test binary as a child calling AppendUntilKilled (from its
// TestMain, when CrashChildEnv, which CrashTest sets to the hex group ID,
// is in its environment); open opens the store in the parent, on the
// database the child uses.
func CrashTest(t *testing.T, open func(t *testing.T) ds.Store, child func() *exec.Cmd, rounds, acksPerRound int) {
	t.Helper()
	s := open(t)
	groupID := newGroup(t, s).ID
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	groupIDHex := hex.EncodeToString(groupID)
	for round := range rounds {
		cmd := child()
		if cmd.Env == nil {
			cmd.Env = os.Environ()
		}
		cmd.Env = append(cmd.Env, CrashChildEnv+"="+groupIDHex)
		cmd.Stderr = os.Stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		pid := cmd.Process.Pid
		t.Cleanup(func() { cmd.Process.Kill() })
		acked := make(map[uint64]string) // seq → data
		lines := make(chan string)
		go func() {
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				lines <- sc.Text()
			}
			close(lines)
		}()
		timeout := time.After(60 * time.Second)
	read:
		for len(acked) < acksPerRound {
			select {
			case line, ok := <-lines:
				if !ok {
					break read
				}
				var i int
				var seq uint64
				if _, err := fmt.Sscanf(line, "%d %d", &i, &seq); err != nil {
					continue // the test framework's own output
				}
				acked[seq] = fmt.Sprintf("crash-%d-%d", pid, i)
			case <-timeout:
				break read
			}
		}
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatalf("round %d: kill: %v", round, err)
		}
		for range lines { // drain, so that Wait can finish
		}
		cmd.Wait()
		if len(acked) < acksPerRound {
			t.Fatalf("round %d: the child acknowledged %d appends before it was killed, want %d", round, len(acked), acksPerRound)
		}

		s := open(t)
		g, err := s.GetGroup(t.Context(), groupID)
		if err != nil {
			t.Fatalf("round %d: GetGroup after the crash: %v", round, err)
		}
		es := allEntries(t, s, groupID)
		t.Logf("round %d: child %d killed after %d acknowledged appends; the log has %d entries", round, pid, len(acked), len(es))
		if uint64(len(es)) != g.LastSeq {
			t.Errorf("round %d: %d entries, but LastSeq = %d", round, len(es), g.LastSeq)
		}
		for j, e := range es {
			if e.Seq != uint64(j+1) {
				t.Fatalf("round %d: entry %d has seq %d: a gap after the crash", round, j, e.Seq)
			}
		}
		for seq, data := range acked {
			if seq == 0 || seq > uint64(len(es)) {
				t.Errorf("round %d: acknowledged seq %d is missing (log has %d)", round, seq, len(es))
				continue
			}
			if got := string(es[seq-1].Data); got != data {
				t.Errorf("round %d: seq %d holds %q, acknowledged as %q", round, seq, got, data)
			}
		}
		// The log goes on after the crash.
		if seq, err := s.Append(t.Context(), entryFor(t, groupID, g.State.Epoch, ds.KindApplication)); err != nil || seq != g.LastSeq+1 {
			t.Errorf("round %d: Append after the crash = %d, %v; want %d", round, seq, err, g.LastSeq+1)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
}
