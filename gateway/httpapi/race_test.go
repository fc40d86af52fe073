//go:build race

package httpapi

// raceEnabled: the race detector slows reading and preparing a 40 MiB
// body several times over, so the large-message tests use smaller ones.
const raceEnabled = true
