package audit

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// chunk is how much is read at a time when scanning a file from its end.
const chunk = 64 << 10

// rotated is one rotated file, PATH.n.
type rotated struct {
	path string
	n    int
}

// rotatedFiles lists the rotated files of the log at path, oldest first.
func rotatedFiles(path string) ([]rotated, error) {
	dir, base := filepath.Dir(path), filepath.Base(path)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []rotated
	for _, e := range entries {
		suffix, ok := strings.CutPrefix(e.Name(), base+".")
		if !ok {
			continue
		}
		n, err := strconv.Atoi(suffix)
		if err != nil || n < 1 || strconv.Itoa(n) != suffix {
			continue
		}
		out = append(out, rotated{path: filepath.Join(dir, e.Name()), n: n})
	}
	slices.SortFunc(out, func(a, b rotated) int { return a.n - b.n })
	return out, nil
}

// syncDir makes renames and creations in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	return errors.Join(err, d.Close())
}

// repairTail cuts off the bytes after the last "\n" of f (a line whose write
// never completed) and returns the resulting size.
func repairTail(f *os.File) (int64, error) {
	st, err := f.Stat()
	if err != nil {
		return 0, err
	}
	size := st.Size()
	if size == 0 {
		return 0, nil
	}
	nl, err := lastNewline(f, size)
	if err != nil {
		return 0, err
	}
	good := nl + 1
	if good == size {
		return size, nil
	}
	if err := f.Truncate(good); err != nil {
		return 0, err
	}
	if err := f.Sync(); err != nil {
		return 0, err
	}
	return good, nil
}

// lastNewline finds the offset of the last "\n" in the first end bytes of r,
// or -1.
func lastNewline(r io.ReaderAt, end int64) (int64, error) {
	buf := make([]byte, chunk)
	for end > 0 {
		n := min(int64(chunk), end)
		start := end - n
		if err := readFull(r, buf[:n], start); err != nil {
			return 0, err
		}
		if i := bytes.LastIndexByte(buf[:n], '\n'); i >= 0 {
			return start + int64(i), nil
		}
		end = start
	}
	return -1, nil
}

// lastLine returns the last line (without "\n") of the first end bytes of r,
// which end with "\n".
func lastLine(r io.ReaderAt, end int64) ([]byte, error) {
	var line []byte
	err := scanBackward(r, end, func(b []byte) (bool, error) {
		line = b
		return true, nil
	})
	return line, err
}

// countLines counts the "\n" in the first end bytes of r.
func countLines(r io.ReaderAt, end int64) (int, error) {
	buf := make([]byte, chunk)
	count := 0
	for off := int64(0); off < end; {
		n := min(int64(chunk), end-off)
		if err := readFull(r, buf[:n], off); err != nil {
			return 0, err
		}
		count += bytes.Count(buf[:n], []byte{'\n'})
		off += n
	}
	return count, nil
}

// scanBackward calls fn with each line (without "\n") of the first end bytes
// of r, last line first, until fn returns true or an error. The slice passed
// to fn is only valid during the call. Lines end with "\n"; bytes after the
// last one are passed as a line of their own.
func scanBackward(r io.ReaderAt, end int64, fn func([]byte) (bool, error)) error {
	var carry []byte // the start of a line whose beginning is not read yet
	pos := end
	for pos > 0 {
		n := min(int64(chunk), pos)
		pos -= n
		data := make([]byte, n, n+int64(len(carry)))
		if err := readFull(r, data, pos); err != nil {
			return err
		}
		data = append(data, carry...)
		i := len(data)
		if i > 0 && data[i-1] == '\n' && len(carry) == 0 && pos+n == end {
			i-- // the final "\n" of the region ends the last line
		}
		for {
			j := bytes.LastIndexByte(data[:i], '\n')
			if j < 0 {
				break
			}
			stop, err := fn(data[j+1 : i])
			if stop || err != nil {
				return err
			}
			i = j
		}
		carry = data[:i]
	}
	if len(carry) > 0 || end > 0 {
		_, err := fn(carry)
		return err
	}
	return nil
}

// readFull reads len(b) bytes at off.
func readFull(r io.ReaderAt, b []byte, off int64) error {
	n, err := r.ReadAt(b, off)
	if n == len(b) {
		return nil
	}
	if err == nil || errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	return err
}
