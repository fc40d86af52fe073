//go:build !race

package ses

const raceEnabled = false
