package mls

import (
	"context"
	"crypto"
	"crypto/ed25519"

	"github.com/mlskit/mls/credential"
	"github.com/mlskit/mls/storage"
)

// Test helpers shared by the package's internal and external tests
// (mls_test reaches them as mls.ClientOf and mls.LoaderOf).

// ClientOf returns a new Client over store for id that accepts every
// credential. Each call returns a new Client, so a group loaded through it
// is a handle of its own, as in another process.
func ClientOf(store storage.Store, id Identity) *Client {
	return ClientWith(store, id, credential.AcceptAll, ClientOptions{})
}

// ClientWith is ClientOf with a validator and options.
func ClientWith(store storage.Store, id Identity, v credential.Validator, opts ClientOptions) *Client {
	c, err := NewClient(context.Background(), store, id.Credential, id.Signer, v, opts)
	if err != nil {
		panic(err)
	}
	return c
}

// loaderKey signs for LoaderOf clients given no signer.
var loaderKey = ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize))

// LoaderOf returns a new Client over store with signer (any key if nil),
// for loading groups and storing PSKs.
func LoaderOf(store storage.Store, signer crypto.Signer) *Client {
	if signer == nil {
		signer = loaderKey
	}
	return ClientOf(store, Identity{Credential: credential.NewBasic([]byte("loader")), Signer: signer})
}
