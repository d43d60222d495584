//go:build race

package monitoring

// raceEnabled: this test runs with -race, and so does the nested one.
const raceEnabled = true
