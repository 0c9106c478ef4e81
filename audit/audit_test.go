package audit_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/elevate-pam/elevate/audit"
	"github.com/elevate-pam/elevate/internal/clocktest"
)

var t0 = time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)

func open(t testing.TB, cfg audit.Config) *audit.Log {
	t.Helper()
	if cfg.Now == nil {
		cfg.Now = clocktest.NewStepping(t0, time.Second).Now // t0, t0+1s, ...
	}
	l, err := audit.Open(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = l.Close() })
	return l
}

func logPath(t testing.TB) string {
	return filepath.Join(t.TempDir(), "data", "audit.log")
}

func call(event, subject string) audit.Record {
	return audit.Record{Kind: audit.KindCall, Event: event, Subject: subject, Method: "POST",
		Host: "exchange.elevate.test", Path: "/mailboxes/m1/move-requests", Task: `Exchange\New-MoveRequest`}
}

func writeN(t testing.TB, l *audit.Log, n int) []audit.Record {
	t.Helper()
	out := make([]audit.Record, 0, n)
	for i := range n {
		r, err := l.Write(context.Background(), call("allowed", fmt.Sprintf("user%d", i)))
		require.NoError(t, err)
		out = append(out, r)
	}
	return out
}

func readLines(t testing.TB, path string) [][]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	lines := bytes.SplitAfter(b, []byte("\n"))
	if len(lines[len(lines)-1]) == 0 {
		lines = lines[:len(lines)-1]
	}
	return lines
}

func writeLines(t testing.TB, path string, lines [][]byte) {
	t.Helper()
	require.NoError(t, os.WriteFile(path, bytes.Join(lines, nil), 0o600))
}

// seal recomputes a line's hash the way the package doc describes, as a
// forger who knows the scheme would.
func seal(t testing.TB, canon []byte) []byte {
	t.Helper()
	sum := sha256.Sum256(canon)
	return fmt.Appendf(nil, `%s,"hash":"%s"}`+"\n", canon[:len(canon)-1], hex.EncodeToString(sum[:]))
}

// canonical strips the hash member off a line, as the package doc describes.
func canonical(t testing.TB, line []byte) []byte {
	t.Helper()
	line = bytes.TrimSuffix(line, []byte("\n"))
	require.Greater(t, len(line), 75)
	require.Equal(t, `,"hash":"`, string(line[len(line)-75:len(line)-66]))
	return append(bytes.Clone(line[:len(line)-75]), '}')
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		desc string
		cfg  audit.Config
		want string // "" when valid
	}{
		{"path is required", audit.Config{}, "audit.path: required"},
		{"max bytes must not be negative", audit.Config{Path: "/x/audit.log", MaxBytes: -1}, "audit.max_bytes: must not be negative"},
		{"zero max bytes takes the default", audit.Config{Path: "/x/audit.log"}, ""},
		{"everything set", audit.Config{Path: "audit.log", MaxBytes: 1 << 10, Now: time.Now}, ""},
		{"one body key source", audit.Config{Path: "audit.log", BodyKeyFile: "k", BodyKeyEnv: "K"}, "audit.body_key_file, audit.body_key_env: set one or the other"},
		{"a body key that cannot be read", audit.Config{Path: "audit.log", BodyKeyFile: "/nonexistent/body.key"}, "audit.body_key_file: open /nonexistent/body.key"},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			err := tc.cfg.Validate()
			if tc.want == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tc.want)
			_, err = audit.Open(tc.cfg)
			require.ErrorContains(t, err, tc.want)
		})
	}
}

func TestOpenCreatesPrivateFiles(t *testing.T) {
	path := logPath(t)
	open(t, audit.Config{Path: path})
	st, err := os.Stat(path)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), st.Mode().Perm())
	st, err = os.Stat(filepath.Dir(path))
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o700), st.Mode().Perm())
}

func TestWriteFillsAndChains(t *testing.T) {
	path := logPath(t)
	l := open(t, audit.Config{Path: path})

	tp := sdktrace.NewTracerProvider()
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	ctx, span := tp.Tracer("audit-test").Start(context.Background(), "call")
	defer span.End()
	sc := span.SpanContext()

	first, err := l.Write(ctx, call("allowed", "alice"))
	require.NoError(t, err)
	require.Equal(t, uint64(1), first.Seq)
	require.Equal(t, audit.Genesis, first.Prev)
	require.Equal(t, t0, first.Time)
	id, err := uuid.Parse(first.ID)
	require.NoError(t, err)
	require.Equal(t, uuid.Version(7), id.Version())
	require.Equal(t, sc.TraceID().String(), first.TraceID)
	require.Equal(t, sc.SpanID().String(), first.SpanID)
	require.Len(t, first.Hash, 64)

	given := audit.Record{Kind: audit.KindLifecycle, Event: "request.approved", ID: "dec-1",
		Time: time.Date(2026, 3, 1, 10, 0, 0, 0, time.FixedZone("CET", 3600)), TraceID: "caller-trace",
		RequestID: "r1", Approvers: []string{"bob"}, After: json.RawMessage(`{"status":"approved"}`)}
	second, err := l.Write(ctx, given)
	require.NoError(t, err)
	require.Equal(t, uint64(2), second.Seq)
	require.Equal(t, first.Hash, second.Prev)
	require.Equal(t, "dec-1", second.ID)
	require.Equal(t, "caller-trace", second.TraceID, "a trace id set by the caller is kept")
	require.Empty(t, second.SpanID)
	require.True(t, second.Time.Equal(given.Time))
	require.Equal(t, time.UTC, second.Time.Location())

	third, err := l.Write(context.Background(), call("denied", "carol"))
	require.NoError(t, err)
	require.Equal(t, second.Hash, third.Prev)
	require.Empty(t, third.TraceID, "no span, no trace id")

	rep, err := audit.Verify(path)
	require.NoError(t, err)
	require.Equal(t, audit.Report{Records: 3, Files: 1, LastHash: third.Hash}, rep)

	// What is on disk is what Write returned.
	lines := readLines(t, path)
	require.Len(t, lines, 3)
	for i, want := range []audit.Record{first, second, third} {
		var got audit.Record
		require.NoError(t, json.Unmarshal(lines[i], &got))
		require.Equal(t, want, got)
	}
	st := l.Stats()
	require.Equal(t, uint64(3), st.Seq)
	require.Zero(t, st.QueueDepth)
	require.Positive(t, st.LastFsync)
	require.Equal(t, uint64(3), st.Fsyncs, "one writer at a time, one fsync per record")
}

// TestCanonicalBytesAsDocumented re-checks a log with nothing but the
// package doc's recipe: strip the hash member, hash, compare, follow prev.
func TestCanonicalBytesAsDocumented(t *testing.T) {
	path := logPath(t)
	l := open(t, audit.Config{Path: path})
	writeN(t, l, 4)
	prev, seq := audit.Genesis, uint64(0)
	for i, line := range readLines(t, path) {
		canon := canonical(t, line)
		sum := sha256.Sum256(canon)
		h := hex.EncodeToString(sum[:])
		require.True(t, bytes.HasSuffix(line, []byte(`,"hash":"`+h+"\"}\n")), "line %d", i+1)
		var c struct {
			Seq  uint64 `json:"seq"`
			Prev string `json:"prev"`
		}
		require.NoError(t, json.Unmarshal(canon, &c))
		require.Equal(t, seq+1, c.Seq)
		require.Equal(t, prev, c.Prev)
		prev, seq = h, c.Seq
		require.NotContains(t, string(canon), `"hash"`)
	}
	require.Equal(t, uint64(4), seq)
}

func TestWriteRefusesInvalidRecords(t *testing.T) {
	tests := []struct {
		desc string
		rec  audit.Record
	}{
		{"kind is missing", audit.Record{Event: "allowed"}},
		{"kind is unknown", audit.Record{Kind: "other", Event: "allowed"}},
		{"event is missing", audit.Record{Kind: audit.KindCall}},
		{"before is not JSON", audit.Record{Kind: audit.KindLifecycle, Event: "policy.deleted", Before: json.RawMessage(`{"a":`)}},
		{"after is not JSON", audit.Record{Kind: audit.KindLifecycle, Event: "policy.created", After: json.RawMessage(`nope`)}},
		{"time is out of range", audit.Record{Kind: audit.KindCall, Event: "allowed", Time: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)}},
		{"a field is not JSON", audit.Record{Kind: audit.KindCall, Event: "allowed", Fields: map[string]json.RawMessage{"zone": json.RawMessage(`{`)}}},
		{"an operation's field is not JSON", audit.Record{Kind: audit.KindCall, Event: "allowed",
			Operations: []audit.Operation{{Name: "aria2.shutdown", Fields: map[string]json.RawMessage{"gid": json.RawMessage(`x`)}}}}},
	}
	path := logPath(t)
	l := open(t, audit.Config{Path: path})
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			_, err := l.Write(context.Background(), tc.rec)
			require.ErrorIs(t, err, audit.ErrInvalid)
		})
	}
	rep, err := audit.Verify(path)
	require.NoError(t, err)
	require.Zero(t, rep.Records, "nothing refused reaches the log")
	r, err := l.Write(context.Background(), call("allowed", "alice"))
	require.NoError(t, err)
	require.Equal(t, uint64(1), r.Seq, "refused records use no seq")
}

func TestWriteCanceledContext(t *testing.T) {
	path := logPath(t)
	l := open(t, audit.Config{Path: path})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := l.Write(ctx, call("allowed", "alice"))
	require.ErrorIs(t, err, context.Canceled)
	rep, err := audit.Verify(path)
	require.NoError(t, err)
	require.Zero(t, rep.Records)
}

func TestVerifyDetectsTampering(t *testing.T) {
	tests := []struct {
		desc   string
		tamper func(t *testing.T, lines [][]byte) [][]byte
		line   int
		reason string
	}{
		{
			desc: "an edited field",
			tamper: func(t *testing.T, lines [][]byte) [][]byte {
				lines[2] = bytes.Replace(lines[2], []byte(`"allowed"`), []byte(`"denied"`), 1)
				return lines
			},
			line: 3, reason: "hash does not match",
		},
		{
			desc: "an edited field with its hash recomputed",
			tamper: func(t *testing.T, lines [][]byte) [][]byte {
				lines[2] = seal(t, bytes.Replace(canonical(t, lines[2]), []byte(`"user2"`), []byte(`"mallory"`), 1))
				return lines
			},
			line: 4, reason: "prev does not match",
		},
		{
			desc: "a deleted line",
			tamper: func(t *testing.T, lines [][]byte) [][]byte {
				return append(lines[:2], lines[3:]...)
			},
			line: 3, reason: "seq 4 where 3 was expected",
		},
		{
			desc: "the first line deleted",
			tamper: func(t *testing.T, lines [][]byte) [][]byte {
				return lines[1:]
			},
			line: 1, reason: "seq 2 where 1 was expected",
		},
		{
			desc: "two swapped lines",
			tamper: func(t *testing.T, lines [][]byte) [][]byte {
				lines[3], lines[4] = lines[4], lines[3]
				return lines
			},
			line: 4, reason: "seq 5 where 4 was expected",
		},
		{
			desc: "an inserted line copied from another",
			tamper: func(t *testing.T, lines [][]byte) [][]byte {
				return append(lines[:2], append([][]byte{lines[0]}, lines[2:]...)...)
			},
			line: 3, reason: "seq 1 where 3 was expected",
		},
		{
			desc: "an inserted forged line with a stale hash",
			tamper: func(t *testing.T, lines [][]byte) [][]byte {
				forged := bytes.Replace(lines[1], []byte(`"user1"`), []byte(`"mallory"`), 1)
				return append(lines[:2], append([][]byte{forged}, lines[2:]...)...)
			},
			line: 3, reason: "hash does not match",
		},
		{
			desc: "an inserted forged line, well sealed",
			tamper: func(t *testing.T, lines [][]byte) [][]byte {
				var prev struct {
					Hash string `json:"hash"`
				}
				require.NoError(t, json.Unmarshal(lines[1], &prev))
				canon := fmt.Appendf(nil, `{"seq":3,"time":"2026-03-01T09:00:02Z","id":"x","kind":"call","event":"allowed","subject":"mallory","prev":%q}`, prev.Hash)
				return append(lines[:2], append([][]byte{seal(t, canon)}, lines[2:]...)...)
			},
			line: 4, reason: "seq 3 where 4 was expected",
		},
		{
			desc: "a truncated last line",
			tamper: func(t *testing.T, lines [][]byte) [][]byte {
				last := len(lines) - 1
				lines[last] = lines[last][:len(lines[last])-20]
				return lines
			},
			line: 6, reason: "truncated record",
		},
		{
			desc: "a last line that lost only its end of line",
			tamper: func(t *testing.T, lines [][]byte) [][]byte {
				last := len(lines) - 1
				lines[last] = bytes.TrimSuffix(lines[last], []byte("\n"))
				return lines
			},
			line: 6, reason: "truncated record",
		},
		{
			desc: "an empty line",
			tamper: func(t *testing.T, lines [][]byte) [][]byte {
				return append(lines[:1], append([][]byte{[]byte("\n")}, lines[1:]...)...)
			},
			line: 2, reason: "malformed record",
		},
		{
			desc: "a hash in upper case",
			tamper: func(t *testing.T, lines [][]byte) [][]byte {
				n := len(lines[4])
				lines[4] = append(bytes.Clone(lines[4][:n-67]), append(bytes.ToUpper(lines[4][n-67:n-3]), lines[4][n-3:]...)...)
				return lines
			},
			line: 5, reason: "not 64 lowercase hex digits",
		},
		{
			desc: "a member added after the hash",
			tamper: func(t *testing.T, lines [][]byte) [][]byte {
				lines[1] = bytes.Replace(lines[1], []byte("\"}\n"), []byte("\",\"x\":1}\n"), 1)
				return lines
			},
			line: 2, reason: "malformed record",
		},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			path := logPath(t)
			l := open(t, audit.Config{Path: path})
			writeN(t, l, 6)
			require.NoError(t, l.Close())
			_, err := audit.Verify(path)
			require.NoError(t, err, "the untouched log verifies")

			writeLines(t, path, tc.tamper(t, readLines(t, path)))
			_, err = audit.Verify(path)
			require.ErrorIs(t, err, audit.ErrTampered)
			var te *audit.TamperError
			require.ErrorAs(t, err, &te)
			require.Equal(t, path, te.File)
			require.Equal(t, tc.line, te.Line)
			require.Contains(t, te.Reason, tc.reason)
			require.Contains(t, err.Error(), fmt.Sprintf("%s:%d:", path, tc.line))
		})
	}
}

func TestVerifyInput(t *testing.T) {
	_, err := audit.Verify()
	require.ErrorIs(t, err, audit.ErrInvalid)
	_, err = audit.Verify(filepath.Join(t.TempDir(), "absent.log"))
	require.ErrorIs(t, err, os.ErrNotExist)
	require.NotErrorIs(t, err, audit.ErrTampered)

	empty := filepath.Join(t.TempDir(), "empty.log")
	require.NoError(t, os.WriteFile(empty, nil, 0o600))
	rep, err := audit.Verify(empty)
	require.NoError(t, err)
	require.Equal(t, audit.Report{Files: 1}, rep)
}

func TestRotationCarriesTheChain(t *testing.T) {
	path := logPath(t)
	const maxBytes = 1200
	l := open(t, audit.Config{Path: path, MaxBytes: maxBytes})
	recs := writeN(t, l, 20)

	set := []string{}
	for n := 1; ; n++ {
		p := fmt.Sprintf("%s.%d", path, n)
		if _, err := os.Stat(p); err != nil {
			break
		}
		set = append(set, p)
	}
	require.GreaterOrEqual(t, len(set), 3, "records of ~400 bytes fill a 1200-byte file two at a time")
	set = append(set, path)

	seq := 0
	for i, p := range set {
		lines := readLines(t, p)
		st, err := os.Stat(p)
		require.NoError(t, err)
		require.LessOrEqual(t, st.Size(), int64(maxBytes), p)
		require.NotEmpty(t, lines, p)
		var first audit.Record
		require.NoError(t, json.Unmarshal(lines[0], &first))
		if i == 0 {
			require.Equal(t, audit.Genesis, first.Prev)
		} else {
			require.Equal(t, recs[seq-1].Hash, first.Prev, "%s continues the chain of the file before it", p)
		}
		seq += len(lines)
	}
	require.Equal(t, 20, seq)

	rep, err := audit.Verify(path)
	require.NoError(t, err)
	require.Equal(t, audit.Report{Records: 20, Files: len(set), LastHash: recs[19].Hash}, rep)
	rep2, err := audit.Verify(set...)
	require.NoError(t, err)
	require.Equal(t, rep, rep2)

	// A file missing from the middle of the set.
	require.NoError(t, l.Close())
	hidden := set[1] + ".hidden"
	require.NoError(t, os.Rename(set[1], hidden))
	_, err = audit.Verify(path)
	var te *audit.TamperError
	require.ErrorAs(t, err, &te)
	require.Equal(t, audit.TamperError{File: set[1], Reason: "missing from the rotated set"}, *te)

	_, err = audit.Verify(append([]string{set[0]}, set[2:]...)...)
	require.ErrorAs(t, err, &te)
	require.Equal(t, set[2], te.File)
	require.Equal(t, 1, te.Line)

	// Files in the wrong order.
	require.NoError(t, os.Rename(hidden, set[1]))
	_, err = audit.Verify(set[1], set[0])
	require.ErrorAs(t, err, &te)
	require.Equal(t, set[1], te.File)
	require.Equal(t, 1, te.Line)
}

func TestRecordLargerThanMaxBytesGoesAlone(t *testing.T) {
	path := logPath(t)
	l := open(t, audit.Config{Path: path, MaxBytes: 500})
	writeN(t, l, 1)
	big := call("allowed", "alice")
	big.After = json.RawMessage(`"` + strings.Repeat("x", 1000) + `"`)
	_, err := l.Write(context.Background(), big)
	require.NoError(t, err)
	writeN(t, l, 1)

	require.Len(t, readLines(t, path+".1"), 1)
	require.Len(t, readLines(t, path+".2"), 1, "the big record alone")
	require.Len(t, readLines(t, path), 1)
	rep, err := audit.Verify(path)
	require.NoError(t, err)
	require.Equal(t, 3, rep.Records)
	require.Equal(t, 3, rep.Files)
}

func TestReopenContinuesTheChain(t *testing.T) {
	tests := []struct {
		desc   string
		before func(t *testing.T, path string) // between Close and Open
	}{
		{"clean reopen", func(*testing.T, string) {}},
		{
			desc: "a torn last line is cut off",
			before: func(t *testing.T, path string) {
				f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
				require.NoError(t, err)
				_, err = f.WriteString(`{"seq":4,"time":"2026-03-01T09:00:`)
				require.NoError(t, err)
				require.NoError(t, f.Close())
			},
		},
		{
			desc: "crash between rotating the file and creating the next",
			before: func(t *testing.T, path string) {
				require.NoError(t, os.Rename(path, path+".1"))
			},
		},
		{
			desc: "crash right after creating the next file",
			before: func(t *testing.T, path string) {
				require.NoError(t, os.Rename(path, path+".1"))
				require.NoError(t, os.WriteFile(path, nil, 0o600))
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			path := logPath(t)
			l := open(t, audit.Config{Path: path})
			first := writeN(t, l, 3)
			require.NoError(t, l.Close())

			tc.before(t, path)

			l2 := open(t, audit.Config{Path: path})
			require.Equal(t, uint64(3), l2.Stats().Seq)
			more := writeN(t, l2, 2)
			require.Equal(t, uint64(4), more[0].Seq)
			require.Equal(t, first[2].Hash, more[0].Prev)
			rep, err := audit.Verify(path)
			require.NoError(t, err)
			require.Equal(t, 5, rep.Records)
			require.Equal(t, more[1].Hash, rep.LastHash)
		})
	}
}

func TestOpenRefusesATamperedLastRecord(t *testing.T) {
	path := logPath(t)
	l := open(t, audit.Config{Path: path})
	writeN(t, l, 3)
	require.NoError(t, l.Close())
	lines := readLines(t, path)
	lines[2] = bytes.Replace(lines[2], []byte(`"user2"`), []byte(`"mallory"`), 1)
	writeLines(t, path, lines)

	_, err := audit.Open(audit.Config{Path: path})
	require.ErrorIs(t, err, audit.ErrTampered)
	var te *audit.TamperError
	require.ErrorAs(t, err, &te)
	require.Equal(t, path, te.File)
	require.Equal(t, 3, te.Line)
}

func TestOneWriterPerPath(t *testing.T) {
	path := logPath(t)
	l := open(t, audit.Config{Path: path})
	_, err := audit.Open(audit.Config{Path: path})
	require.ErrorIs(t, err, audit.ErrUnavailable)
	require.NoError(t, l.Close())
	l2 := open(t, audit.Config{Path: path})
	writeN(t, l2, 1)
}

func TestCloseAndAfter(t *testing.T) {
	path := logPath(t)
	l := open(t, audit.Config{Path: path})
	writeN(t, l, 1)
	require.NoError(t, l.Close())
	_, err := l.Write(context.Background(), call("allowed", "alice"))
	require.ErrorIs(t, err, audit.ErrClosed)
	_, err = l.Query(context.Background(), audit.Filter{})
	require.ErrorIs(t, err, audit.ErrClosed)
	require.ErrorIs(t, l.Close(), audit.ErrClosed)
}

func TestConcurrentWritersShareFsyncs(t *testing.T) {
	path := logPath(t)
	var told atomic.Uint64
	l := open(t, audit.Config{Path: path, MaxBytes: 64 << 10, OnFsync: func(d time.Duration) {
		if d > 0 {
			told.Add(1)
		}
	}})
	const writers, each = 200, 5
	var wg sync.WaitGroup
	got := make([][]audit.Record, writers)
	errs := make([]error, writers)
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				r, err := l.Write(context.Background(), call("allowed", fmt.Sprintf("w%d-%d", w, i)))
				if err != nil {
					errs[w] = err
					return
				}
				got[w] = append(got[w], r)
			}
		})
	}
	wg.Wait()
	require.NoError(t, errors.Join(errs...))

	bySeq := map[uint64]audit.Record{}
	for _, rs := range got {
		for _, r := range rs {
			_, dup := bySeq[r.Seq]
			require.False(t, dup, "seq %d handed out twice", r.Seq)
			bySeq[r.Seq] = r
		}
	}
	require.Len(t, bySeq, writers*each)
	for seq := uint64(2); seq <= writers*each; seq++ {
		require.Equal(t, bySeq[seq-1].Hash, bySeq[seq].Prev)
	}
	rep, err := audit.Verify(path)
	require.NoError(t, err)
	require.Equal(t, writers*each, rep.Records)
	require.Greater(t, rep.Files, 1, "the test also rotates under load")
	require.Equal(t, bySeq[writers*each].Hash, rep.LastHash)
	st := l.Stats()
	require.Equal(t, uint64(writers*each), st.Seq)
	require.Zero(t, st.QueueDepth)
	require.Less(t, st.Fsyncs, uint64(writers*each), "concurrent records share fsyncs")
	require.Equal(t, st.Fsyncs, told.Load(), "OnFsync hears of every fsync, with its duration")
	t.Logf("%d records, %d fsyncs", st.Seq, st.Fsyncs)
}

func TestQuery(t *testing.T) {
	path := logPath(t)
	l := open(t, audit.Config{Path: path, MaxBytes: 2000}) // spread over several files
	ctx := context.Background()
	// Seq i (1-based) has Time t0+(i-1)s.
	fixture := []audit.Record{
		call("allowed", "alice"),        // 1
		call("denied", "bob"),           // 2
		call("grant_required", "alice"), // 3
		{Kind: audit.KindLifecycle, Event: "request.submitted", Subject: "alice", RequestID: "req-1", Task: `Exchange\New-MoveRequest`}, // 4
		{Kind: audit.KindLifecycle, Event: "request.approved", Subject: "bob", RequestID: "req-1", Task: `Exchange\New-MoveRequest`},    // 5
		call("allowed", "alice"), // 6
		{Kind: audit.KindCall, Event: "allowed", Subject: `quote"d`, Task: `Exchange\Get-Mailbox`, TraceID: "4bf92f3577b34da6a3ce929d0e0e4736"}, // 7
		call("unauthenticated", ""), // 8
		call("allowed", "alice"),    // 9
		{Kind: audit.KindLifecycle, Event: "request.revoked", Subject: "carol", RequestID: "req-1"}, // 10
	}
	fixture[5].RequestID = "req-1"
	fixture[0].Upstream, fixture[5].Upstream = "exchange", "exchange"
	fixture[1].Upstream, fixture[1].Task = "aria2", ""
	fixture[1].Operations = []audit.Operation{{Name: "aria2.tellActive", Task: `Aria2\Get-Active`, Outcome: "allow"},
		{Name: "aria2.shutdown", Task: `Aria2\Shutdown`, Outcome: "deny"}}
	for _, r := range fixture {
		_, err := l.Write(ctx, r)
		require.NoError(t, err)
	}
	_, err := os.Stat(path + ".1")
	require.NoError(t, err, "the fixture spans rotated files")

	tests := []struct {
		desc string
		f    audit.Filter
		want []uint64
	}{
		{"everything, newest first", audit.Filter{}, []uint64{10, 9, 8, 7, 6, 5, 4, 3, 2, 1}},
		{"by subject", audit.Filter{Subject: "alice"}, []uint64{9, 6, 4, 3, 1}},
		{"by subject that needs escaping", audit.Filter{Subject: `quote"d`}, []uint64{7}},
		{"by task", audit.Filter{Task: `Exchange\Get-Mailbox`}, []uint64{7}},
		{"by the task of one of its operations", audit.Filter{Task: `Aria2\Shutdown`}, []uint64{2}},
		{"by upstream", audit.Filter{Upstream: "exchange"}, []uint64{6, 1}},
		{"by upstream and task", audit.Filter{Upstream: "aria2", Task: `Aria2\Get-Active`}, []uint64{2}},
		{"an upstream named only in another field does not match", audit.Filter{Upstream: "alice"}, nil},
		{"by event", audit.Filter{Event: "allowed"}, []uint64{9, 7, 6, 1}},
		{"by request", audit.Filter{RequestID: "req-1"}, []uint64{10, 6, 5, 4}},
		{"by trace", audit.Filter{TraceID: "4bf92f3577b34da6a3ce929d0e0e4736"}, []uint64{7}},
		{"since is inclusive", audit.Filter{Since: t0.Add(7 * time.Second)}, []uint64{10, 9, 8}},
		{"until is exclusive", audit.Filter{Until: t0.Add(2 * time.Second)}, []uint64{2, 1}},
		{"a time window and a subject", audit.Filter{Subject: "alice", Since: t0.Add(2 * time.Second), Until: t0.Add(6 * time.Second)}, []uint64{6, 4, 3}},
		{"a subject substring does not match", audit.Filter{Subject: "alic"}, nil},
		{"a value of another field does not match", audit.Filter{Subject: "allowed"}, nil},
		{"limit", audit.Filter{Event: "allowed", Limit: 2}, []uint64{9, 7}},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			page, err := l.Query(ctx, tc.f)
			require.NoError(t, err)
			var seqs []uint64
			for _, r := range page.Records {
				seqs = append(seqs, r.Seq)
			}
			require.Equal(t, tc.want, seqs)
		})
	}

	t.Run("records come back as written", func(t *testing.T) {
		page, err := l.Query(ctx, audit.Filter{RequestID: "req-1", Event: "request.approved"})
		require.NoError(t, err)
		require.Len(t, page.Records, 1)
		r := page.Records[0]
		require.Equal(t, t0.Add(4*time.Second), r.Time)
		require.Equal(t, "bob", r.Subject)
		require.Len(t, r.Hash, 64)
	})

	t.Run("bad filters", func(t *testing.T) {
		for _, f := range []audit.Filter{
			{Limit: -1},
			{Limit: audit.MaxLimit + 1},
			{Cursor: "not-a-cursor"},
			{Cursor: "c2VxOjA"}, // seq:0
			{Since: t0, Until: t0},
		} {
			_, err := l.Query(ctx, f)
			require.ErrorIs(t, err, audit.ErrInvalid, "%+v", f)
		}
	})
}

func TestQueryPaging(t *testing.T) {
	path := logPath(t)
	l := open(t, audit.Config{Path: path, MaxBytes: 1500})
	recs := writeN(t, l, 23)
	tests := []struct {
		desc  string
		limit int
		pages int
	}{
		{"pages that divide unevenly", 5, 5},
		{"pages of one", 1, 23},
		{"a page that fits exactly", 23, 1},
		{"the default page size", 0, 1},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			var seen []uint64
			cursor, pages := "", 0
			for {
				page, err := l.Query(context.Background(), audit.Filter{Limit: tc.limit, Cursor: cursor})
				require.NoError(t, err)
				pages++
				for _, r := range page.Records {
					seen = append(seen, r.Seq)
				}
				if page.Next == "" {
					break
				}
				require.Less(t, pages, 100)
				cursor = page.Next
			}
			require.Equal(t, tc.pages, pages)
			require.Len(t, seen, len(recs))
			for i, seq := range seen {
				require.Equal(t, uint64(len(recs)-i), seq)
			}
		})
	}

	t.Run("a cursor outlives new writes", func(t *testing.T) {
		page, err := l.Query(context.Background(), audit.Filter{Limit: 3})
		require.NoError(t, err)
		writeN(t, l, 4)
		next, err := l.Query(context.Background(), audit.Filter{Limit: 3, Cursor: page.Next})
		require.NoError(t, err)
		require.Equal(t, uint64(20), next.Records[0].Seq)
	})
}

func TestWriteFailsUnavailableOnAFullDevice(t *testing.T) {
	if _, err := os.Stat("/dev/full"); err != nil {
		t.Skip("no /dev/full here")
	}
	path := filepath.Join(t.TempDir(), "audit.log")
	require.NoError(t, os.Symlink("/dev/full", path))
	l := open(t, audit.Config{Path: path})

	const writers = 20
	var wg sync.WaitGroup
	errs := make([]error, writers)
	for i := range writers {
		wg.Go(func() {
			_, errs[i] = l.Write(context.Background(), call("allowed", "alice"))
		})
	}
	wg.Wait()
	for _, err := range errs {
		require.ErrorIs(t, err, audit.ErrUnavailable)
		require.NotErrorIs(t, err, audit.ErrInvalid)
	}
	require.Zero(t, l.Stats().Seq)
	require.Zero(t, l.Stats().QueueDepth)
}

func TestRotationFailureFailsClosedAndRecovers(t *testing.T) {
	path := logPath(t)
	l := open(t, audit.Config{Path: path, MaxBytes: 1000}) // two ~400-byte records per file
	writeN(t, l, 2)                                        // the next record would need a rotation
	require.NoError(t, os.WriteFile(path+".1", []byte("in the way\n"), 0o600))

	_, err := l.Write(context.Background(), call("allowed", "alice"))
	require.ErrorIs(t, err, audit.ErrUnavailable)
	require.Len(t, readLines(t, path), 2, "the current file is untouched")

	require.NoError(t, os.Remove(path+".1"))
	r, err := l.Write(context.Background(), call("allowed", "alice"))
	require.NoError(t, err)
	require.Equal(t, uint64(3), r.Seq, "the failed record used no seq")
	rep, err := audit.Verify(path)
	require.NoError(t, err)
	require.Equal(t, 3, rep.Records)
	require.Equal(t, 2, rep.Files)
}

func BenchmarkWrite(b *testing.B) {
	path := filepath.Join(b.TempDir(), "audit.log")
	l := open(b, audit.Config{Path: path, Now: time.Now})
	b.SetParallelism(16) // 16 writers per CPU share fsyncs
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := l.Write(context.Background(), call("allowed", "alice")); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
}

// Append writes without an fsync of its own: the next Write's fsync, or
// the delayed one, makes its records durable, and the chain is one.
func TestAppendRidesOnTheNextFsync(t *testing.T) {
	ctx := context.Background()
	path := logPath(t)
	l := open(t, audit.Config{Path: path, AppendSyncDelay: time.Hour})
	first, err := l.Write(ctx, call("allowed", "alice"))
	require.NoError(t, err)
	require.Equal(t, uint64(1), l.Stats().Fsyncs)

	var appended []audit.Record
	for range 3 {
		out := call("outcome", "alice")
		out.Ref = first.ID
		r, err := l.Append(ctx, out)
		require.NoError(t, err)
		appended = append(appended, r)
	}
	require.Equal(t, uint64(1), l.Stats().Fsyncs, "Append does not fsync")
	require.Equal(t, first.Hash, appended[0].Prev)
	require.Len(t, readLines(t, path), 4, "appended records are in the file at once")
	page, err := l.Query(ctx, audit.Filter{Event: "outcome"})
	require.NoError(t, err)
	require.Len(t, page.Records, 3, "and readable")

	next, err := l.Write(ctx, call("allowed", "bob"))
	require.NoError(t, err)
	require.Equal(t, appended[2].Hash, next.Prev)
	require.Equal(t, uint64(2), l.Stats().Fsyncs, "one fsync carries the appended records and the next")

	require.NoError(t, l.Close())
	rep, err := audit.Verify(path)
	require.NoError(t, err)
	require.Equal(t, 5, rep.Records)
}

// Without a Write to carry them, appended records are synced after
// AppendSyncDelay, and at Close.
func TestAppendIsSyncedByItself(t *testing.T) {
	ctx := context.Background()
	path := logPath(t)
	l := open(t, audit.Config{Path: path, AppendSyncDelay: time.Millisecond})
	_, err := l.Append(ctx, call("outcome", "alice"))
	require.NoError(t, err)
	require.Eventually(t, func() bool { return l.Stats().Fsyncs == 1 }, 10*time.Second, time.Millisecond)

	path2 := logPath(t)
	l2 := open(t, audit.Config{Path: path2, AppendSyncDelay: time.Hour})
	_, err = l2.Append(ctx, call("outcome", "alice"))
	require.NoError(t, err)
	require.Zero(t, l2.Stats().Fsyncs)
	require.NoError(t, l2.Close())
	l3 := open(t, audit.Config{Path: path2})
	r, err := l3.Write(ctx, call("allowed", "bob"))
	require.NoError(t, err)
	require.Equal(t, uint64(2), r.Seq, "the appended record was kept at Close")
}

// Writers and appenders at once: one unbroken chain, across rotations.
func TestAppendAndWriteInterleave(t *testing.T) {
	path := logPath(t)
	l := open(t, audit.Config{Path: path, MaxBytes: 16 << 10, AppendSyncDelay: time.Millisecond})
	const workers, each = 16, 40
	var wg sync.WaitGroup
	errs := make([]error, workers)
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				var err error
				if (w+i)%2 == 0 {
					_, err = l.Append(context.Background(), call("outcome", fmt.Sprintf("w%d", w)))
				} else {
					_, err = l.Write(context.Background(), call("allowed", fmt.Sprintf("w%d", w)))
				}
				if err != nil {
					errs[w] = err
					return
				}
			}
		})
	}
	wg.Wait()
	require.NoError(t, errors.Join(errs...))
	require.NoError(t, l.Close())
	rep, err := audit.Verify(path)
	require.NoError(t, err)
	require.Equal(t, workers*each, rep.Records)
	require.Greater(t, rep.Files, 1)
}

func TestAppendFailsOnAFullDevice(t *testing.T) {
	if _, err := os.Stat("/dev/full"); err != nil {
		t.Skip("no /dev/full here")
	}
	path := filepath.Join(t.TempDir(), "audit.log")
	require.NoError(t, os.Symlink("/dev/full", path))
	l := open(t, audit.Config{Path: path})
	_, err := l.Append(context.Background(), call("outcome", "alice"))
	require.ErrorIs(t, err, audit.ErrUnavailable)
	require.Zero(t, l.Stats().Seq)
}
