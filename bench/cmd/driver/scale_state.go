package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// scaleState is what --scale-state keeps of the scale scenario between
// invocations of the driver: the rounds done so far, each written as soon
// as it is complete. A round of 100,000 objects takes about an hour, and
// three of them outlast many a session or a machine's patience; with the
// state file a driver that was stopped goes on with the next round, and
// the report covers every round of every invocation. Rounds are whole:
// every framework of a round ran on the same control plane, minutes
// apart, so a figure held against the same round's client-go writer
// stays meaningful across invocations.
type scaleState struct {
	Objects int `json:"objects"`
	Workers int `json:"workers"`
	// Tree is the rein tree measured (treeVersion): rounds of different
	// code do not go into one table.
	Tree string `json:"tree"`
	// Rounds is the number of complete rounds.
	Rounds int `json:"rounds"`
	// Invocations are the driver runs that added rounds, oldest first.
	Invocations []scaleInvocation `json:"invocations"`

	Figures []string                        `json:"figures"`
	Values  map[string]map[string][]float64 `json:"values"`
	Round   map[string]map[string][]int     `json:"round"`
	Fails   map[string]int                  `json:"fails"`
	Warm    map[string][]bool               `json:"warm"`
}

// scaleInvocation is one driver run's share of the rounds.
type scaleInvocation struct {
	Date    string  `json:"date"`
	Rounds  []int   `json:"rounds"`
	Created float64 `json:"createdSeconds"` // creating its objects
	Took    float64 `json:"tookSeconds"`    // its whole run, creation included
}

// loadScaleState reads path; a missing file is an empty state. A state of
// other settings is an error naming them: its rounds would not compare.
func loadScaleState(path string, objects, workers int, tree string) (*scaleState, error) {
	st := &scaleState{Objects: objects, Workers: workers, Tree: tree}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(b, st); err != nil {
		return nil, fmt.Errorf("%s: %w (remove it to start over)", path, err)
	}
	if st.Objects != objects || st.Workers != workers {
		return nil, fmt.Errorf("%s holds rounds of --objects %d --workers %d, not %d and %d: remove it, or run with its settings", path, st.Objects, st.Workers, objects, workers)
	}
	if st.Tree != tree {
		return nil, fmt.Errorf("%s holds rounds of rein at %s, and the tree is at %s: remove it to measure this tree", path, st.Tree, tree)
	}
	return st, nil
}

// restore puts the saved rounds into sc.
func (st *scaleState) restore(sc *scale) {
	r := sc.res
	r.figures = append(r.figures, st.Figures...)
	for fig, byFw := range st.Values {
		r.values[fig] = byFw
	}
	for fig, byFw := range st.Round {
		r.rounds[fig] = byFw
	}
	for k, n := range st.Fails {
		r.fails[k] += n
	}
	for fw, w := range st.Warm {
		sc.warm[fw] = append(sc.warm[fw], w...)
	}
}

// save records sc after round, a complete round of this invocation, in
// path (written to a temporary file first: a driver stopped while it
// writes leaves the last good state).
func (st *scaleState) save(path string, sc *scale, round int, began time.Time) error {
	st.Rounds = round
	inv := &st.Invocations[len(st.Invocations)-1]
	inv.Rounds = append(inv.Rounds, round)
	inv.Took = time.Since(began).Seconds()
	st.Warm = sc.warm
	r := sc.res
	r.mu.Lock()
	st.Figures = r.figures
	st.Values, st.Round, st.Fails = r.values, r.rounds, r.fails
	b, err := json.MarshalIndent(st, "", " ")
	r.mu.Unlock()
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// provenance says which invocation ran which rounds, when, and for how long.
func (st *scaleState) provenance(objects int) string {
	var parts []string
	for _, inv := range st.Invocations {
		if len(inv.Rounds) == 0 {
			continue
		}
		parts = append(parts, fmt.Sprintf("%s %s on %s (%v, creating the objects %v)", plural(len(inv.Rounds), "round", "rounds"), joinInts(inv.Rounds),
			inv.Date, time.Duration(inv.Took*float64(time.Second)).Round(time.Second), time.Duration(inv.Created*float64(time.Second)).Round(100*time.Millisecond)))
	}
	return fmt.Sprintf("Written by `bench/cmd/driver --scenarios scale --scale-state` (rein at %s) over %d %s, each on a fresh\ncontrol plane: %s.\n",
		st.Tree, len(parts), plural(len(parts), "invocation", "invocations"), strings.Join(parts, "; "))
}

// createRates are the invocations' objects created per second.
func (st *scaleState) createRates(objects int) string {
	var parts []string
	for _, inv := range st.Invocations {
		if len(inv.Rounds) > 0 && inv.Created > 0 {
			parts = append(parts, fmt.Sprintf("%.0f", float64(objects)/inv.Created))
		}
	}
	return strings.Join(parts, ", ")
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

func joinInts(ns []int) string {
	s := make([]string, len(ns))
	for i, n := range ns {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, ", ")
}

// treeVersion is the commit the driver runs in, with "-dirty" when code
// differs from it (markdown does not count: the driver writes its report
// there), or "unknown" outside a git checkout.
func treeVersion() string {
	out, err := exec.Command("git", "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return "unknown"
	}
	v := strings.TrimSpace(string(out))
	if exec.Command("git", "diff", "--quiet", "HEAD", "--", ":(top)", ":(top,exclude)*.md").Run() != nil {
		v += "-dirty"
	}
	return v
}
