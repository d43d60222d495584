package hypervisor

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// stateFileName is the file, in Config.DataDir, that holds the VMs.
const stateFileName = "vms.json"

// tempPrefix starts the names of the temporary files a save writes before
// renaming them over vms.json. One left behind by a crash is removed at
// start.
const tempPrefix = stateFileName + ".tmp-"

// stateFileVersion is the version of the vms.json layout.
const stateFileVersion = 1

// stateFile is the layout of vms.json.
type stateFile struct {
	Version int        `json:"version"`
	NextID  int64      `json:"nextID"`
	Creates int64      `json:"creates"`
	Deletes int64      `json:"deletes"`
	VMs     []vmRecord `json:"vms"`
}

// vmRecord is a VM as persisted: with the time its transition, if any, is
// due to end, so that a restart resumes it rather than starting it over.
type vmRecord struct {
	VM
	TransitionEndsAt time.Time `json:"transitionEndsAt,omitzero"`
}

// readStateFile reads path. A missing file is an empty state; anything
// that does not parse or is inconsistent is an error naming the file.
func readStateFile(path string) (*stateFile, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return &stateFile{Version: stateFileVersion}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("hypervisor: reading %s: %w", path, err)
	}
	var sf stateFile
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&sf); err != nil {
		return nil, fmt.Errorf("hypervisor: corrupt state file %s: %w", path, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("hypervisor: corrupt state file %s: data after the JSON object", path)
	}
	if err := sf.validate(); err != nil {
		return nil, fmt.Errorf("hypervisor: corrupt state file %s: %w", path, err)
	}
	return &sf, nil
}

func (sf *stateFile) validate() error {
	if sf.Version != stateFileVersion {
		return fmt.Errorf("version %d, want %d", sf.Version, stateFileVersion)
	}
	if sf.NextID < 0 || sf.Creates < 0 || sf.Deletes < 0 {
		return errors.New("negative counter")
	}
	seen := make(map[string]bool, len(sf.VMs))
	for i, r := range sf.VMs {
		switch {
		case r.ID == "":
			return fmt.Errorf("vms[%d]: empty id", i)
		case seen[r.ID]:
			return fmt.Errorf("vms[%d]: duplicate id %q", i, r.ID)
		case r.Token == "":
			return fmt.Errorf("vm %s: empty token", r.ID)
		case !r.Power.valid():
			return fmt.Errorf("vm %s: invalid power %q", r.ID, r.Power)
		case !r.State.valid():
			return fmt.Errorf("vm %s: invalid state %q", r.ID, r.State)
		}
		seen[r.ID] = true
	}
	return nil
}

// idNumber returns the number in an ID made by formatID, or 0.
func idNumber(id string) int64 {
	n, err := strconv.ParseInt(strings.TrimPrefix(id, "vm-"), 10, 64)
	if err != nil || !strings.HasPrefix(id, "vm-") {
		return 0
	}
	return n
}

func formatID(n int64) string { return fmt.Sprintf("vm-%06d", n) }

// writeFileAtomic replaces path with data so that a reader, or a restart
// after a crash, sees either the old content or the new one, never a part:
// it writes a temporary file in the same directory, fsyncs it, renames it
// over path and fsyncs the directory.
func writeFileAtomic(path string, data []byte) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(tmp)
		}
	}()
	if _, err = f.Write(data); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	if err = os.Rename(tmp, path); err != nil {
		return err
	}
	// Make the rename itself durable. Some file systems refuse to fsync a
	// directory; the rename has happened anyway, so that is not an error.
	if d, derr := os.Open(dir); derr == nil {
		_ = d.Sync()
		_ = d.Close()
	}
	return nil
}

// removeStaleTemps removes temporary files a crashed save left in dir.
func removeStaleTemps(dir string) error {
	matches, err := filepath.Glob(filepath.Join(dir, tempPrefix+"*"))
	if err != nil {
		return err
	}
	for _, m := range matches {
		if err := os.Remove(m); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return nil
}
