//go:build race

package ses

// raceEnabled: the race detector slows base64 and SigV4 hashing of a
// 40 MiB body several times over, so the wire test uses a smaller one.
const raceEnabled = true
