package mls_test

import "github.com/mlskit/mls"

var (
	clientOf   = mls.ClientOf
	clientWith = mls.ClientWith
	loaderOf   = mls.LoaderOf
)
