package codegen

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
)

// A rerun on an unchanged API is the common case (`go generate ./...`
// after editing a handler), and generating costs seconds. rein-gen keeps,
// per module and options, a record in the user's cache folder: a
// fingerprint of everything its output depends on, and the hash of every
// file it produced. When the fingerprint matches and every file still has
// its recorded content (and no other owned file has appeared), the run
// ends there. Anything else, including a file edited or deleted by hand,
// means a full run.
//
// The fingerprint covers: this binary (path, size, modification time, and
// its module build information), the options, go.mod and go.sum (the
// versions of every dependency whose types the API uses), and the
// hand-written Go files of the API packages and of the module's own
// packages they import, transitively, and, with an RBAC folder, the
// module's files that hold +kubebuilder:rbac markers.

// record is what the cache keeps for one module and set of options.
type record struct {
	Fingerprint string            `json:"fingerprint"`
	Files       map[string]string `json:"files"` // path → sha256 of content
}

// recordPath is where the record of this run's module and options lives;
// "" when there is no cache folder.
func (r *run) recordPath() string {
	cache, err := os.UserCacheDir()
	if err != nil {
		return ""
	}
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00%s\x00%s\x00%s\x00%s\x00%s", r.moduleDir, r.opts.OutputPackage, r.crdDir, r.webhookDir, r.rbacDir, r.header, strings.Join(r.importPaths(), ","))
	return filepath.Join(cache, "rein-gen", "runs", hex.EncodeToString(h.Sum(nil))[:32]+".json")
}

func (r *run) importPaths() []string {
	var paths []string
	for _, p := range r.packages {
		paths = append(paths, p.ImportPath)
	}
	return paths
}

// fingerprint hashes the inputs of the output (see above).
func (r *run) fingerprint() (string, error) {
	h := sha256.New()
	fmt.Fprintf(h, "rein-gen record v3\x00%s\x00%s\x00%s\x00%s\x00%s\x00%s\x00%s\x00%s\x00%v\x00", r.opts.OutputPackage, r.crdDir, r.webhookDir, r.opts.WebhookService, r.rbacDir, r.rbacRole, r.header, strings.Join(r.importPaths(), ","), r.opts.NoTypeCheck)
	// The module's files with RBAC markers (readRBAC found them all, so a
	// marker added, changed or removed anywhere changes this).
	for _, s := range r.rbacInputs {
		fmt.Fprintf(h, "rbac\x00%s\x00%d\x00", s.Path, len(s.Src))
		h.Write(s.Src)
	}
	if exe, err := os.Executable(); err == nil {
		if info, err := os.Stat(exe); err == nil {
			fmt.Fprintf(h, "%s\x00%d\x00%d\x00", exe, info.Size(), info.ModTime().UnixNano())
		}
	}
	if info, ok := debug.ReadBuildInfo(); ok {
		h.Write([]byte(info.String()))
	}
	for _, name := range []string{"go.mod", "go.sum"} {
		content, err := os.ReadFile(filepath.Join(r.moduleDir, name))
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return "", err
		}
		fmt.Fprintf(h, "%s\x00%d\x00", name, len(content))
		h.Write(content)
	}
	// The API packages and the module's packages they import.
	queue := r.importPaths()
	seen := map[string]bool{}
	for len(queue) > 0 {
		importPath := queue[0]
		queue = queue[1:]
		if seen[importPath] {
			continue
		}
		seen[importPath] = true
		dir := filepath.Join(r.moduleDir, filepath.FromSlash(strings.TrimPrefix(strings.TrimPrefix(importPath, r.module), "/")))
		sources, err := handWritten(dir)
		if errors.Is(err, fs.ErrNotExist) {
			continue // not a folder of this module: the build will say
		}
		if err != nil {
			return "", err
		}
		for _, sf := range sources {
			name, content := sf.name, sf.src
			fmt.Fprintf(h, "%s/%s\x00%d\x00", importPath, name, len(content))
			h.Write(content)
			f, err := parser.ParseFile(token.NewFileSet(), name, content, parser.ImportsOnly)
			if err != nil {
				continue // a syntax error: validation reports it
			}
			for _, imp := range f.Imports {
				path, _ := strconv.Unquote(imp.Path.Value)
				if strings.HasPrefix(path, r.module+"/") {
					queue = append(queue, path)
				}
			}
		}
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// upToDate reports whether the recorded output of an identical run is
// still in place.
func (r *run) upToDate(fingerprint string) bool {
	path := r.recordPath()
	if path == "" {
		return false
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return false
	}
	var rec record
	if json.Unmarshal(data, &rec) != nil || rec.Fingerprint != fingerprint || len(rec.Files) == 0 {
		return false
	}
	for file, sum := range rec.Files {
		content, err := os.ReadFile(file)
		if err != nil || hashOf(content) != sum {
			return false
		}
	}
	// An owned file the record does not list would be removed by a full run.
	extra := false
	trees, flat := r.ownedRoots()
	for _, root := range trees {
		_ = filepath.WalkDir(root, func(file string, d fs.DirEntry, err error) error {
			if err != nil || extra {
				return filepath.SkipDir
			}
			if !d.IsDir() {
				if _, ok := rec.Files[file]; !ok {
					extra = true
				}
			}
			return nil
		})
	}
	for _, dir := range flat {
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			file := filepath.Join(dir, e.Name())
			if _, ok := rec.Files[file]; ok || e.IsDir() {
				continue
			}
			if content, err := os.ReadFile(file); err == nil && r.owned(file, content) {
				extra = true
			}
		}
	}
	return !extra
}

// saveRecord writes the record of a successful run; a failure to write it
// only costs the next run its shortcut.
func (r *run) saveRecord(fingerprint string, files map[string][]byte) {
	path := r.recordPath()
	if path == "" {
		return
	}
	rec := record{Fingerprint: fingerprint, Files: map[string]string{}}
	for file, content := range files {
		rec.Files[file] = hashOf(content)
	}
	data, err := json.Marshal(rec)
	if err != nil {
		return
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return
	}
	_ = writeAtomic(path, data)
}

func hashOf(content []byte) string {
	sum := sha256.Sum256(content)
	return hex.EncodeToString(sum[:])
}
