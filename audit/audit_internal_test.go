package audit

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

func callRecord(subject string) Record {
	return Record{Kind: KindCall, Event: "allowed", Subject: subject}
}

// TestWriteFailureLeavesTheFileConsistent breaks the writer's file handle
// under it, then leaves bytes behind as a write cut short would: the batch
// fails with ErrUnavailable, and the next write cuts the file back to its
// last good length and carries on the chain.
func TestWriteFailureLeavesTheFileConsistent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	l, err := Open(Config{Path: path})
	require.NoError(t, err)
	t.Cleanup(func() { _ = l.Close() })
	ctx := context.Background()
	for _, s := range []string{"alice", "bob"} {
		_, err := l.Write(ctx, callRecord(s))
		require.NoError(t, err)
	}
	good, err := os.Stat(path)
	require.NoError(t, err)

	l.fileMu.RLock()
	require.NoError(t, l.f.Close())
	l.fileMu.RUnlock()
	_, err = l.Write(ctx, callRecord("carol"))
	require.ErrorIs(t, err, ErrUnavailable)
	require.ErrorIs(t, err, os.ErrClosed)

	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	require.NoError(t, err)
	_, err = f.WriteString(`{"seq":3,"time":"2026-`)
	require.NoError(t, err)
	require.NoError(t, f.Close())

	r, err := l.Write(ctx, callRecord("dave"))
	require.NoError(t, err)
	require.Equal(t, uint64(3), r.Seq)
	rep, err := Verify(path)
	require.NoError(t, err)
	require.Equal(t, 3, rep.Records)
	require.Equal(t, r.Hash, rep.LastHash)
	st, err := os.Stat(path)
	require.NoError(t, err)
	require.Greater(t, st.Size(), good.Size())
}

// TestFileShrinkingUnderTheLogFailsClosed: records that were acknowledged
// vanished from the file, so the log refuses to write on top of the gap.
func TestFileShrinkingUnderTheLogFailsClosed(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	l, err := Open(Config{Path: path})
	require.NoError(t, err)
	t.Cleanup(func() { _ = l.Close() })
	ctx := context.Background()
	_, err = l.Write(ctx, callRecord("alice"))
	require.NoError(t, err)

	l.fileMu.RLock()
	require.NoError(t, l.f.Close())
	l.fileMu.RUnlock()
	require.NoError(t, os.Truncate(path, 0))
	for range 2 {
		_, err = l.Write(ctx, callRecord("bob"))
		require.ErrorIs(t, err, ErrUnavailable)
	}
}

func TestScanBackward(t *testing.T) {
	long := string(make([]byte, 3*chunk))
	tests := []struct {
		desc string
		data string
		want []string
	}{
		{"empty", "", nil},
		{"one line", "a\n", []string{"a"}},
		{"lines", "a\nbb\nccc\n", []string{"ccc", "bb", "a"}},
		{"an empty line", "a\n\nb\n", []string{"b", "", "a"}},
		{"a torn tail is a line of its own", "a\nb", []string{"b", "a"}},
		{"lines longer than a chunk", "x\n" + long + "\ny\n", []string{"y", long, "x"}},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "f")
			require.NoError(t, os.WriteFile(path, []byte(tc.data), 0o600))
			f, err := os.Open(path)
			require.NoError(t, err)
			defer f.Close()
			var got []string
			require.NoError(t, scanBackward(f, int64(len(tc.data)), func(b []byte) (bool, error) {
				got = append(got, string(b))
				return false, nil
			}))
			require.Equal(t, tc.want, got)
		})
	}
}
