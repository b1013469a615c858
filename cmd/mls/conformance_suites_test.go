package main

import (
	"fmt"
	"strings"
	"testing"

	"github.com/mlskit/mls/ciphersuite"
)

// TestConformanceSuiteCoverage: the table lists every suite with the
// number of passing files that cover it, read from the vectors' own
// cipher_suite fields; the post-quantum suites are covered by none and
// the table says so instead of counting them.
func TestConformanceSuiteCoverage(t *testing.T) {
	t.Parallel()
	dir := realVectors(t)
	status, table, _ := runCmd("conformance", "-v", "-vectors", dir)
	if status != 0 {
		t.Fatalf("exit status %d:\n%s", status, table)
	}
	rows := map[string]string{}
	for _, line := range strings.Split(table, "\n") {
		if strings.HasPrefix(line, "0x") {
			f := strings.Fields(line)
			rows[f[0]] = strings.Join(f[2:], " ")
		}
	}
	// Counted outside this code from the files' cipher_suite fields: crypto-basics,
	// key-schedule, message-protection, passive-client-handling-commit,
	// passive-client-welcome, psk_secret, secret-tree, transcript-hashes,
	// tree-validation, treekem and welcome have cases for all seven suites;
	// tree-operations and passive-client-random only for suite 1.
	for _, id := range ciphersuite.All() {
		want := "11: "
		if id == 1 {
			want = "13: "
		}
		if got := rows[fmt.Sprintf("0x%04x", uint16(id))]; !strings.HasPrefix(got, want) || !strings.Contains(got, "crypto-basics.json") {
			t.Errorf("%v: %q, want %q and the file names", id, got, want+"...")
		}
	}
	for _, id := range ciphersuite.PostQuantum() {
		if got := rows[fmt.Sprintf("0x%04x", uint16(id))]; !strings.HasPrefix(got, "none: no official vectors") {
			t.Errorf("%v: %q, want none", id, got)
		}
	}
	if !strings.Contains(table, "post-quantum suites are not counted as passed") {
		t.Errorf("no statement about the post-quantum suites:\n%s", table)
	}
}
