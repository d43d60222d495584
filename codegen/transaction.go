package codegen

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/rein-k8s/rein/codegen/internal/crds"
)

// transaction records every change rein-gen makes to the tree, so that a
// run that fails after writing (the generated code does not type-check)
// leaves the tree as it found it.
type transaction struct {
	undo []func() error
}

// write puts content at file unless it already holds exactly that (an
// unchanged file keeps its modification time, so build caches stay warm),
// and reports whether it wrote. The file is replaced by a rename, so a
// reader never sees half of it.
func (t *transaction) write(file string, content []byte) (bool, error) {
	old, err := os.ReadFile(file)
	existed := err == nil
	if existed && bytes.Equal(old, content) {
		return false, nil
	}
	var mtime time.Time
	if info, statErr := os.Stat(file); statErr == nil {
		mtime = info.ModTime()
	}
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return false, err
	}
	if err := t.mkdirAll(filepath.Dir(file)); err != nil {
		return false, err
	}
	if err := writeAtomic(file, content); err != nil {
		return false, err
	}
	if existed {
		t.undo = append(t.undo, restore(file, old, mtime))
	} else {
		t.undo = append(t.undo, func() error { return os.Remove(file) })
	}
	return true, nil
}

// remove deletes file, keeping its content to put back.
func (t *transaction) remove(file string) error {
	old, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	info, err := os.Stat(file)
	if err != nil {
		return err
	}
	if err := os.Remove(file); err != nil {
		return err
	}
	t.undo = append(t.undo, restore(file, old, info.ModTime()))
	return nil
}

// restore puts content back at file with its modification time, so that
// build caches and tools that look at times see no change either.
func restore(file string, content []byte, mtime time.Time) func() error {
	return func() error {
		if err := writeAtomic(file, content); err != nil {
			return err
		}
		if mtime.IsZero() {
			return nil
		}
		return os.Chtimes(file, mtime, mtime)
	}
}

// removeIfEmpty deletes dir when it holds nothing.
func (t *transaction) removeIfEmpty(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil || len(entries) > 0 {
		return nil
	}
	if err := os.Remove(dir); err != nil {
		return err
	}
	t.undo = append(t.undo, func() error { return os.Mkdir(dir, 0o755) })
	return nil
}

// mkdirAll creates dir and its missing parents, recording each.
func (t *transaction) mkdirAll(dir string) error {
	if _, err := os.Stat(dir); err == nil {
		return nil
	}
	if err := t.mkdirAll(filepath.Dir(dir)); err != nil {
		return err
	}
	if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	t.undo = append(t.undo, func() error { return os.Remove(dir) })
	return nil
}

// rollback undoes the changes, newest first.
func (t *transaction) rollback() error {
	var errs []error
	for i := len(t.undo) - 1; i >= 0; i-- {
		if err := t.undo[i](); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	t.undo = nil
	if len(errs) > 0 {
		return fmt.Errorf("codegen: restoring the tree after the failure: %w", errors.Join(errs...))
	}
	return nil
}

// writeAtomic writes content to file through a rename (crds.WriteAtomic).
func writeAtomic(file string, content []byte) error { return crds.WriteAtomic(file, content) }
