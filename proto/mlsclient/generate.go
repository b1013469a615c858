// Package mlsclient holds the Go code generated from the MLS working
// group's interop protocol, mls_client.proto (github.com/mlswg/mls-implementations,
// interop/proto), kept outside the repository in ../shared/interop. The
// generated code is committed; `go generate ./proto/mlsclient` rebuilds it
// with protoc (Debian's protobuf-compiler), protoc-gen-go and
// protoc-gen-connect-go.
package mlsclient

//go:generate protoc -I ../../../shared/interop --go_out=. --go_opt=paths=source_relative --go_opt=Mmls_client.proto=github.com/mlskit/mls/proto/mlsclient;mlsclient --connect-go_out=. --connect-go_opt=paths=source_relative --connect-go_opt=Mmls_client.proto=github.com/mlskit/mls/proto/mlsclient;mlsclient mls_client.proto
