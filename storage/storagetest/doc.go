// Package storagetest is the conformance suite for storage.Store
// implementations. Every backend's tests call Run, so all backends keep the
// contract documented in package storage: basic operations, copying,
// ordering and prefix bounds of Scan, DeletePrefix, atomic rollback on
// error and panic, isolation between transactions, concurrent use, context
// cancellation and Close.
package storagetest
