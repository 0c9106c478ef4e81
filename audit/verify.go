package audit

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
)

// Report sums up a successful Verify. Its JSON is what
// `elevate audit verify -o json` prints.
type Report struct {
	Records  int    `json:"records"`   // records checked
	Files    int    `json:"files"`     // files checked
	LastHash string `json:"last_hash"` // Hash of the last record, "" when there is none
}

// TamperError names the first record (or file) that fails verification.
// It wraps ErrTampered.
type TamperError struct {
	File   string
	Line   int // 1-based; 0 when the whole file is at fault
	Reason string
}

func (e *TamperError) Error() string {
	if e.Line == 0 {
		return fmt.Sprintf("audit: %s: %s", e.File, e.Reason)
	}
	return fmt.Sprintf("audit: %s:%d: %s", e.File, e.Line, e.Reason)
}

// Unwrap makes errors.Is(err, ErrTampered) hold.
func (e *TamperError) Unwrap() error { return ErrTampered }

// Verify checks the hash chain of the given files, read in the order given
// as one log that must start at Seq 1 (see the package doc for the checks).
// Given a single path, it checks that path's whole rotated set instead:
// PATH.1, PATH.2, ... then PATH, and a number missing from the sequence is
// reported as a missing file. A record or file that fails yields a
// *TamperError (wrapping ErrTampered) naming the first bad line; a file that
// cannot be read yields its I/O error.
func Verify(paths ...string) (Report, error) {
	if len(paths) == 0 {
		return Report{}, fmt.Errorf("%w: no file to verify", ErrInvalid)
	}
	if len(paths) == 1 {
		set, err := rotatedFiles(paths[0])
		if err != nil {
			return Report{}, err
		}
		expanded := make([]string, 0, len(set)+1)
		for i, r := range set {
			if r.n != i+1 {
				return Report{}, &TamperError{File: paths[0] + "." + strconv.Itoa(i+1), Reason: "missing from the rotated set"}
			}
			expanded = append(expanded, r.path)
		}
		paths = append(expanded, paths[0])
	}
	v := verifier{next: 1, prev: Genesis}
	for _, p := range paths {
		if err := v.file(p); err != nil {
			return Report{}, err
		}
	}
	rep := Report{Records: v.records, Files: len(paths)}
	if v.records > 0 {
		rep.LastHash = v.prev
	}
	return rep, nil
}

// verifier carries the chain from one line, and one file, to the next.
type verifier struct {
	next    uint64 // Seq expected next
	prev    string // Hash of the last good record
	records int
}

func (v *verifier) file(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	br := bufio.NewReaderSize(f, chunk)
	for n := 1; ; n++ {
		line, err := br.ReadBytes('\n')
		if errors.Is(err, io.EOF) {
			if len(line) == 0 {
				return nil
			}
			return &TamperError{File: path, Line: n, Reason: "truncated record: no end of line"}
		}
		if err != nil {
			return fmt.Errorf("audit: %s: %w", path, err)
		}
		if reason := v.line(line[:len(line)-1]); reason != "" {
			return &TamperError{File: path, Line: n, Reason: reason}
		}
	}
}

// line checks one line against the chain so far and advances it.
func (v *verifier) line(line []byte) string {
	c, reason := checkLine(line)
	switch {
	case reason != "":
		return reason
	case c.Seq != v.next:
		return fmt.Sprintf("seq %d where %d was expected: records were removed, reordered or inserted", c.Seq, v.next)
	case c.Prev != v.prev:
		return "prev does not match the hash of the record before it"
	}
	v.next++
	v.prev = c.Hash
	v.records++
	return ""
}
