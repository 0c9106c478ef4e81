package policy

import (
	"errors"
	"io"
	"io/fs"
	"path"
	"slices"
	"strings"
)

// Layers returns one bundle made of several, the first at the bottom: a
// file of a later layer replaces the file at the same path in the layers
// below it, and a directory holds the entries of every layer that has it.
// So Layers(rego.Bundle, os.DirFS(dir)) is the embedded bundle with the
// catalogs, route tables and condition files of dir added, and any file
// that dir holds at an embedded file's path (catalog/exchange.rego, say)
// read in its place. A name that is a file in one layer and a directory in
// another is whatever the upper layer makes it.
//
// Layers reads its layers only when the bundle is opened, so loading the
// returned bundle again reads the directories again.
func Layers(layers ...fs.FS) fs.FS {
	return layered(slices.Clone(layers))
}

type layered []fs.FS

// Open opens name in the uppermost layer that has it; a directory is
// opened as the union of the directories of that name in every layer.
func (l layered) Open(name string) (fs.File, error) {
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrInvalid}
	}
	for i := len(l) - 1; i >= 0; i-- {
		f, err := l[i].Open(name)
		if errors.Is(err, fs.ErrNotExist) {
			if hidden(l[i], name) {
				break
			}
			continue
		}
		if err != nil {
			return nil, err
		}
		st, err := f.Stat()
		if err != nil {
			f.Close()
			return nil, err
		}
		if !st.IsDir() {
			return f, nil
		}
		f.Close()
		entries, err := l[:i+1].readDir(name)
		if err != nil {
			return nil, err
		}
		return &layeredDir{info: st, entries: entries}, nil
	}
	return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
}

// ReadDir lists directory name: the entries of every layer that has it as a
// directory, an upper layer's entry hiding a lower one of the same name,
// sorted by name.
func (l layered) ReadDir(name string) ([]fs.DirEntry, error) {
	f, err := l.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	d, ok := f.(*layeredDir)
	if !ok {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: errors.New("not a directory")}
	}
	return slices.Clone(d.entries), nil
}

// readDir merges directory name of the layers l, from the top down; a
// layer stops the merge where it has name as a file.
func (l layered) readDir(name string) ([]fs.DirEntry, error) {
	seen := map[string]bool{}
	var out []fs.DirEntry
	for i := len(l) - 1; i >= 0; i-- {
		entries, err := fs.ReadDir(l[i], name)
		if errors.Is(err, fs.ErrNotExist) {
			if hidden(l[i], name) {
				break
			}
			continue
		}
		if err != nil {
			st, serr := fs.Stat(l[i], name)
			if serr == nil && !st.IsDir() {
				break // a file here hides the lower layers' directory
			}
			return nil, err
		}
		for _, e := range entries {
			if !seen[e.Name()] {
				seen[e.Name()] = true
				out = append(out, e)
			}
		}
	}
	slices.SortFunc(out, func(a, b fs.DirEntry) int { return strings.Compare(a.Name(), b.Name()) })
	return out, nil
}

// hidden reports whether a directory above name is a file in layer, which
// hides name in the layers below.
func hidden(layer fs.FS, name string) bool {
	for dir := path.Dir(name); dir != "."; dir = path.Dir(dir) {
		if st, err := fs.Stat(layer, dir); err == nil && !st.IsDir() {
			return true
		}
	}
	return false
}

// layeredDir is an open directory of a layered bundle.
type layeredDir struct {
	info    fs.FileInfo
	entries []fs.DirEntry
	offset  int
}

func (d *layeredDir) Stat() (fs.FileInfo, error) { return d.info, nil }
func (d *layeredDir) Close() error               { return nil }
func (d *layeredDir) Read([]byte) (int, error) {
	return 0, &fs.PathError{Op: "read", Path: d.info.Name(), Err: errors.New("is a directory")}
}

func (d *layeredDir) ReadDir(n int) ([]fs.DirEntry, error) {
	rest := d.entries[d.offset:]
	if n <= 0 {
		d.offset = len(d.entries)
		return slices.Clone(rest), nil
	}
	if len(rest) == 0 {
		return nil, io.EOF
	}
	rest = rest[:min(n, len(rest))]
	d.offset += len(rest)
	return slices.Clone(rest), nil
}
