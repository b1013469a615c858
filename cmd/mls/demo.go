package main

import (
	"flag"
	"fmt"
	"io"
)

// This stub stands in until the group layer lands; the demo replaces this
// file.
func init() {
	register(&command{name: "demo", summary: "run a small group through its life cycle (not implemented yet)", run: runDemo})
}

func runDemo(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	if ok, status := parseFlags(fs, "demo", args, stdout, stderr); !ok {
		return status
	}
	fmt.Fprintln(stderr, "mls demo: not implemented yet: it needs the group layer, which has not landed.")
	fmt.Fprintln(stderr, "Meanwhile, run \"go run ./cmd/mls conformance\" to check the parts that exist against the official test vectors.")
	return 1
}
