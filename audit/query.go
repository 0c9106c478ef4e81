package audit

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"
)

// Query limits.
const (
	DefaultLimit = 100
	MaxLimit     = 1000
)

// Filter selects records for Query. Empty fields match everything.
type Filter struct {
	Subject string
	// Task matches a record's task, or the task of one of its
	// operations.
	Task      string
	Upstream  string
	Event     string
	RequestID string
	TraceID   string
	Since     time.Time // records at or after
	Until     time.Time // records before
	Limit     int       // records per page: 0 means DefaultLimit, at most MaxLimit
	Cursor    string    // Page.Next of the previous page, "" for the first
}

// Page is one page of Query results, newest record first.
type Page struct {
	Records []Record
	Next    string // cursor of the following page, "" when this is the last
}

// Query returns the written records that match f, newest first (by Seq),
// from the current file and then the rotated files. Errors about the filter
// wrap ErrInvalid; a line that cannot be decoded yields an error wrapping
// ErrTampered. Query is a linear scan that stops once a page is full.
func (l *Log) Query(ctx context.Context, f Filter) (Page, error) {
	limit, before, err := f.prepare()
	if err != nil {
		return Page{}, err
	}
	if err := ctx.Err(); err != nil {
		return Page{}, fmt.Errorf("audit: %w", err)
	}
	l.mu.Lock()
	closed := l.closed
	l.mu.Unlock()
	if closed {
		return Page{}, ErrClosed
	}
	segs, err := l.snapshot()
	defer func() {
		for _, s := range segs {
			_ = s.f.Close()
		}
	}()
	if err != nil {
		return Page{}, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	m := newMatcher(f)
	var out []Record
	for _, s := range segs {
		lines := 0
		err := scanBackward(s.f, s.size, func(line []byte) (bool, error) {
			if lines++; lines%1024 == 0 {
				if err := ctx.Err(); err != nil {
					return true, err
				}
			}
			if seq, ok := quickSeq(line); ok && before > 0 && seq >= before {
				return false, nil
			}
			if !m.mayMatch(line) {
				return false, nil
			}
			var r Record
			if err := json.Unmarshal(line, &r); err != nil {
				return true, fmt.Errorf("%w: %s: undecodable record: %w", ErrTampered, s.path, err)
			}
			if (before > 0 && r.Seq >= before) || !m.match(r) {
				return false, nil
			}
			out = append(out, r)
			return len(out) > limit, nil
		})
		if err != nil {
			return Page{}, err
		}
		if len(out) > limit {
			break
		}
	}
	page := Page{Records: out}
	if len(out) > limit {
		page.Records = out[:limit]
		page.Next = encodeCursor(out[limit-1].Seq)
	}
	return page, nil
}

// prepare checks f and returns the page size and the Seq that records must
// be below (0: no bound).
func (f Filter) prepare() (limit int, before uint64, err error) {
	limit = f.Limit
	switch {
	case limit == 0:
		limit = DefaultLimit
	case limit < 0 || limit > MaxLimit:
		return 0, 0, fmt.Errorf("%w: limit must be 1 to %d, got %d", ErrInvalid, MaxLimit, f.Limit)
	}
	if !f.Since.IsZero() && !f.Until.IsZero() && !f.Until.After(f.Since) {
		return 0, 0, fmt.Errorf("%w: until must be after since", ErrInvalid)
	}
	if f.Cursor != "" {
		if before, err = decodeCursor(f.Cursor); err != nil {
			return 0, 0, err
		}
	}
	return limit, before, nil
}

const cursorPrefix = "seq:"

func encodeCursor(seq uint64) string {
	return base64.RawURLEncoding.EncodeToString([]byte(cursorPrefix + strconv.FormatUint(seq, 10)))
}

func decodeCursor(c string) (uint64, error) {
	bad := fmt.Errorf("%w: cursor is not one that Query returned", ErrInvalid)
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return 0, bad
	}
	s, ok := bytes.CutPrefix(b, []byte(cursorPrefix))
	if !ok {
		return 0, bad
	}
	seq, err := strconv.ParseUint(string(s), 10, 64)
	if err != nil || seq == 0 {
		return 0, bad
	}
	return seq, nil
}

// quickSeq reads Seq from the start of a line without decoding it all; Seq
// is the first member of every record this package writes.
func quickSeq(line []byte) (uint64, bool) {
	rest, ok := bytes.CutPrefix(line, []byte(`{"seq":`))
	if !ok {
		return 0, false
	}
	end := bytes.IndexByte(rest, ',')
	if end < 0 {
		return 0, false
	}
	seq, err := strconv.ParseUint(string(rest[:end]), 10, 64)
	return seq, err == nil
}

// matcher applies a Filter: mayMatch rules lines out cheaply before they are
// decoded, match decides on the decoded record.
type matcher struct {
	f      Filter
	needle [][]byte // JSON members each matching line must contain
}

func newMatcher(f Filter) matcher {
	m := matcher{f: f}
	for _, kv := range []struct{ key, value string }{
		{"subject", f.Subject}, {"task", f.Task}, {"upstream", f.Upstream}, {"event", f.Event},
		{"request_id", f.RequestID}, {"trace_id", f.TraceID},
	} {
		if kv.value == "" {
			continue
		}
		v, _ := json.Marshal(kv.value) // a string always encodes
		m.needle = append(m.needle, append([]byte(`"`+kv.key+`":`), v...))
	}
	return m
}

func (m matcher) mayMatch(line []byte) bool {
	for _, n := range m.needle {
		if !bytes.Contains(line, n) {
			return false
		}
	}
	return true
}

func (m matcher) match(r Record) bool {
	f := m.f
	return (f.Subject == "" || r.Subject == f.Subject) &&
		(f.Task == "" || r.Task == f.Task || hasTask(r.Operations, f.Task)) &&
		(f.Upstream == "" || r.Upstream == f.Upstream) &&
		(f.Event == "" || r.Event == f.Event) &&
		(f.RequestID == "" || r.RequestID == f.RequestID) &&
		(f.TraceID == "" || r.TraceID == f.TraceID) &&
		(f.Since.IsZero() || !r.Time.Before(f.Since)) &&
		(f.Until.IsZero() || r.Time.Before(f.Until))
}

func hasTask(ops []Operation, task string) bool {
	for _, op := range ops {
		if op.Task == task {
			return true
		}
	}
	return false
}

// segment is one file as Query reads it: only its first size bytes.
type segment struct {
	f    *os.File
	path string
	size int64
}

// snapshot opens the current file and the rotated files, newest first, while
// no rotation can run, and notes how much of each is durable.
func (l *Log) snapshot() ([]segment, error) {
	l.fileMu.RLock()
	defer l.fileMu.RUnlock()
	var segs []segment
	add := func(path string, limit int64) error {
		f, err := os.Open(path)
		if errors.Is(err, os.ErrNotExist) && limit >= 0 {
			return nil // the current file, between rotation and creation
		}
		if err != nil {
			return err
		}
		st, err := f.Stat()
		if err != nil {
			_ = f.Close()
			return err
		}
		size := st.Size()
		if limit >= 0 {
			size = min(size, limit)
		}
		segs = append(segs, segment{f: f, path: path, size: size})
		return nil
	}
	if err := add(l.cfg.Path, l.size); err != nil {
		return segs, err
	}
	rot, err := rotatedFiles(l.cfg.Path)
	if err != nil {
		return segs, err
	}
	for i := len(rot) - 1; i >= 0; i-- {
		if err := add(rot[i].path, -1); err != nil {
			return segs, err
		}
	}
	return segs, nil
}
