//go:build race

package smtpd

// raceEnabled: the race detector slows go-smtp's DATA reader (a byte at a
// time) about tenfold, so the large-message test uses a smaller one.
const raceEnabled = true
