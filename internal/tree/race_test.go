//go:build race

package tree

// raceEnabled: the race detector instruments allocations, so allocation
// counts are not the code's own.
const raceEnabled = true
