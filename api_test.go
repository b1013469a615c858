package mls_test

import (
	"github.com/mlskit/mls"
)

// msgOnly drops the ProposalRef of a Propose* result.
func msgOnly(m *mls.Message, _ mls.ProposalRef, err error) (*mls.Message, error) { return m, err }
