// Command mls is the command-line tool of this MLS (RFC 9420)
// implementation.
//
// Usage:
//
//	mls <command> [flags]
//
// The commands are:
//
//	bench        time group operations at N members against bounds from primitive costs (BENCHMARKS.md)
//	chat         chat through an mlsd delivery service; state in SQLite, one command per line on standard input
//	conformance  check the implementation against the official MLS test vectors
//	demo         Alice, Bob and Charlie rotate keys in a real group, through mlsd (embedded, or -ds URL); -db DIR continues it, -members N grows it
//	inspect      print an MLS message, key package, GroupInfo, Welcome, leaf node or ratchet tree as JSON
//	interop      run the MLS working group's interop configs against live clients (cmd/mls-interop or another stack's)
//
// Run "mls <command> -h" for a command's flags. Each command lives in its
// own file and registers itself from init, so commands can be added
// without touching the dispatcher.
package main
