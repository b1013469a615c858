package sqlite

import "testing"

// SyncSetting returns the writer connection's PRAGMA synchronous.
func SyncSetting(t *testing.T, s *Store) int {
	t.Helper()
	var v int
	if err := s.w.QueryRowContext(t.Context(), `PRAGMA synchronous`).Scan(&v); err != nil {
		t.Fatal(err)
	}
	return v
}
