package main

import (
	"bytes"
	"testing"

	"github.com/mlskit/mls"
	"github.com/mlskit/mls/internal/fuzzcorpus"
)

// TestGenerateFuzzCorpus writes testdata/fuzz/FuzzParseRecord: member
// records without a checkpoint, with an active and an inactive one, in
// two suites, each also cut short. It runs only with
// MLS_UPDATE_FUZZ_CORPUS=1.
func TestGenerateFuzzCorpus(t *testing.T) {
	if !fuzzcorpus.Updating(t) {
		return
	}
	c := fuzzcorpus.New(".", "FuzzParseRecord")
	for _, rec := range []*memberRecord{
		{Name: "Alice", Suite: mls.MLS_256_DHKEMX448_AES256GCM_SHA512_Ed448, GroupID: []byte(demoGroupID), SigningKey: bytes.Repeat([]byte{7}, 57), Runs: 1},
		{Name: "Bob", Index: 1, Suite: mls.MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519, GroupID: []byte(demoGroupID), SigningKey: bytes.Repeat([]byte{8}, 32), Runs: 2,
			Checkpoint: &checkpoint{Epoch: 9, Active: true, Auth: bytes.Repeat([]byte{3}, 32)}},
		{Name: "Charlie", Index: 2, Suite: mls.MLS_256_DHKEMX448_AES256GCM_SHA512_Ed448, GroupID: []byte(demoGroupID), SigningKey: bytes.Repeat([]byte{9}, 57), Runs: 3,
			Checkpoint: &checkpoint{Epoch: 3}},
	} {
		b, err := rec.marshal()
		if err != nil {
			t.Fatal(err)
		}
		c.Add(b)
		c.Add(b[:len(b)-1])
	}
	c.Write(t)
}
