// Package storetest is the conformance suite of ds.Store: every backend
// (ds/store/sqlite, ds/store/postgres) runs the same tests, so that mlsd
// behaves the same on both (RFC 9750, Section 5: one commit per epoch, a
// key package handed out once, an ordered log per group). It also provides
// the PostgreSQL test harness, PostgresDSN.
package storetest
