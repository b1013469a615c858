// Package mlsdv1 holds the Go code generated from mlsd.proto, the delivery
// service's Connect RPC API (gRPC, gRPC-Web and Connect's JSON protocol from
// one handler). The generated code is committed; `go generate
// ./proto/mlsd/v1` rebuilds it with protoc (Debian's protobuf-compiler),
// protoc-gen-go and protoc-gen-connect-go.
package mlsdv1

//go:generate protoc -I . --go_out=. --go_opt=paths=source_relative --connect-go_out=. --connect-go_opt=paths=source_relative mlsd.proto
