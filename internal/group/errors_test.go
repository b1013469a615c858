package group

import (
	"errors"
	"testing"

	"github.com/mlskit/mls/internal/message"
)

// Without the root package, a broken rule is reported as an *Error with
// its rule, section and cause; the epoch checks carry their sentinels.
func TestCheckEpochReports(t *testing.T) {
	e := &Epoch{GC: message.GroupContext{GroupID: []byte{1}, Epoch: 5}}
	cases := []struct {
		id    []byte
		epoch uint64
		rule  string
		cause error
	}{
		{[]byte{2}, 5, "ValSem002", ErrWrongGroup},
		{[]byte{1}, 4, "ValSem003", ErrPastEpoch},
		{[]byte{1}, 6, "ValSem003", ErrFutureEpoch},
	}
	for _, c := range cases {
		err := e.CheckEpoch(c.id, c.epoch)
		var ge *Error
		if !errors.As(err, &ge) || ge.Rule != c.rule || ge.Section != "6" || !errors.Is(err, c.cause) {
			t.Errorf("CheckEpoch(%x, %d) = %v, want rule %s with %v", c.id, c.epoch, err, c.rule, c.cause)
		}
	}
	if err := e.CheckEpoch([]byte{1}, 5); err != nil {
		t.Errorf("CheckEpoch of the group's own ID and epoch: %v", err)
	}
}

// Report is the one place a rule becomes an error: replacing it (as the
// root package does) changes what every check returns.
func TestReportReplaced(t *testing.T) {
	old := Report
	defer func() { Report = old }()
	mine := errors.New("mine")
	Report = func(rule, section, detail string, cause error) error { return mine }
	e := &Epoch{GC: message.GroupContext{GroupID: []byte{1}}}
	if err := e.CheckEpoch([]byte{2}, 0); err != mine {
		t.Fatalf("CheckEpoch = %v, want the installed report", err)
	}
}
