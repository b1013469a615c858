package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/mlskit/mls"
	"github.com/mlskit/mls/ciphersuite"
)

// command is one subcommand. run gets the arguments after the command name
// and returns the process exit status.
type command struct {
	name    string
	summary string
	run     func(args []string, stdout, stderr io.Writer) int
}

var commands = map[string]*command{}

// register adds a subcommand; each subcommand's file calls it from init.
func register(c *command) {
	if _, dup := commands[c.name]; dup {
		panic("mls: duplicate command " + c.name)
	}
	commands[c.name] = c
}

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

// run dispatches args (without the program name) and returns the exit
// status: 0 on success, 1 when the command fails, 2 on a usage error.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return 2
	}
	switch name := args[0]; name {
	case "-h", "-help", "--help":
		usage(stdout)
		return 0
	case "help":
		if len(args) > 1 {
			if c, ok := commands[args[1]]; ok {
				return c.run([]string{"-h"}, stdout, stderr)
			}
			fmt.Fprintf(stderr, "mls help: unknown command %q\n\n", args[1])
			usage(stderr)
			return 2
		}
		usage(stdout)
		return 0
	}
	c, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "mls: unknown command %q\n\n", args[0])
		usage(stderr)
		return 2
	}
	return c.run(args[1:], stdout, stderr)
}

func usage(w io.Writer) {
	fmt.Fprint(w, "mls is a tool for the Messaging Layer Security protocol (RFC 9420).\n\n")
	fmt.Fprint(w, "Usage:\n\n\tmls <command> [flags]\n\nThe commands are:\n\n")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		fmt.Fprintf(w, "\t%-12s %s\n", n, commands[n].summary)
	}
	fmt.Fprint(w, "\nUse \"mls <command> -h\" for a command's flags.\n")
}

// parseFlags parses a subcommand's flags. On -h it prints the usage to
// stdout; on a bad flag it prints the error and the usage to stderr. ok
// reports whether the command should go on; otherwise status is the exit
// status.
func parseFlags(fs *flag.FlagSet, synopsis string, args []string, stdout, stderr io.Writer) (ok bool, status int) {
	fs.SetOutput(io.Discard)
	printUsage := func(w io.Writer) {
		fmt.Fprintf(w, "Usage: mls %s\n\n", synopsis)
		fs.SetOutput(w)
		fs.PrintDefaults()
		fs.SetOutput(io.Discard)
	}
	err := fs.Parse(args)
	switch {
	case err == flag.ErrHelp:
		printUsage(stdout)
		return false, 0
	case err != nil:
		fmt.Fprintf(stderr, "mls %s: %v\n", fs.Name(), err)
		printUsage(stderr)
		return false, 2
	case fs.NArg() > 0:
		fmt.Fprintf(stderr, "mls %s: unexpected argument %q\n", fs.Name(), fs.Arg(0))
		printUsage(stderr)
		return false, 2
	}
	return true, 0
}

// parseSuite accepts an IANA cipher suite name (any case) or its number
// (decimal or 0x hex).
func parseSuite(s string) (mls.CipherSuite, error) {
	var known []string
	for _, id := range ciphersuite.All() {
		if strings.EqualFold(s, id.String()) {
			return id, nil
		}
		known = append(known, fmt.Sprintf("%d=%s", uint16(id), id))
	}
	n, err := strconv.ParseUint(s, 0, 16)
	if err != nil {
		return 0, fmt.Errorf("unknown cipher suite %q; known: %s", s, strings.Join(known, ", "))
	}
	if _, err := ciphersuite.Lookup(mls.CipherSuite(n)); err != nil {
		return 0, fmt.Errorf("unsupported cipher suite %d; known: %s", n, strings.Join(known, ", "))
	}
	return mls.CipherSuite(n), nil
}
