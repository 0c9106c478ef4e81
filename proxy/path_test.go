package proxy

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestParsePath(t *testing.T) {
	cases := []struct {
		desc string
		in   string
		want []string // nil means refused
	}{
		{"root", "/", []string{}},
		{"plain", "/mailboxes/alice", []string{"mailboxes", "alice"}},
		{"trailing slash is an empty last segment", "/config/", []string{"config", ""}},
		{"encoded slash stays in its segment", "/api/vhosts/%2F", []string{"api", "vhosts", "/"}},
		{"encoded slash lower case", "/api/queues/%2f/q1", []string{"api", "queues", "/", "q1"}},
		{"escaped space and unicode", "/a%20b/%C3%A9", []string{"a b", "\u00e9"}},
		{"encoded question mark and hash are data", "/a%3Fb/c%23d", []string{"a?b", "c#d"}},
		{"semicolon is data", "/a;b", []string{"a;b"}},
		{"dots inside a name", "/v1.2/..x/x..", []string{"v1.2", "..x", "x.."}},
		{"no leading slash", "mailboxes", nil},
		{"empty", "", nil},
		{"dot", "/a/./b", nil},
		{"dot dot", "/a/../b", nil},
		{"trailing dot dot", "/a/..", nil},
		{"encoded dot dot", "/a/%2e%2e/b", nil},
		{"mixed case encoded dot dot", "/a/%2E%2e/b", nil},
		{"half encoded dot dot", "/a/.%2e/b", nil},
		{"encoded dot", "/a/%2e/b", nil},
		{"dot dot with matrix parameter", "/a/..;x/b", nil},
		{"dot with matrix parameter", "/a/.;/b", nil},
		{"double-encoded dot", "/a/%252e%252e/b", nil},
		{"double-encoded slash", "/a/%252F/b", nil},
		{"raw backslash", `/a\b`, nil},
		{"encoded backslash", "/a%5Cb", nil},
		{"encoded backslash lower", "/a%5cb", nil},
		{"NUL", "/a%00b", nil},
		{"control byte", "/a%0Ab", nil},
		{"DEL", "/a%7Fb", nil},
		{"invalid escape", "/a%zzb", nil},
		{"truncated escape", "/a%2", nil},
		{"lone percent", "/a%", nil},
		{"empty middle segment", "/a//b", nil},
		{"leading double slash", "//evil.example/a", nil},
		{"raw hash", "/a#b", nil},
		{"raw non-ASCII", "/a\xc3\xa9", nil},
	}
	for _, tc := range cases {
		t.Run(tc.desc, func(t *testing.T) {
			got, err := parsePath(tc.in)
			if tc.want == nil {
				require.Error(t, err)
				require.True(t, errors.Is(err, ErrAmbiguousPath))
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
		})
	}
}

func TestEscapeSegmentsRoundTrip(t *testing.T) {
	cases := []struct {
		desc string
		segs []string
		want string
	}{
		{"plain", []string{"mailboxes", "alice"}, "/mailboxes/alice"},
		{"slash inside a segment", []string{"api", "vhosts", "/"}, "/api/vhosts/%2F"},
		{"percent", []string{"100%"}, "/100%25"},
		{"space and unicode", []string{"a b", "\u00e9"}, "/a%20b/%C3%A9"},
		{"query and hash characters", []string{"a?b", "c#d"}, "/a%3Fb/c%23d"},
		{"sub-delimiters stay", []string{"a;b=c,d"}, "/a;b=c,d"},
		{"trailing slash", []string{"config", ""}, "/config/"},
	}
	for _, tc := range cases {
		t.Run(tc.desc, func(t *testing.T) {
			got := escapeSegments(tc.segs)
			require.Equal(t, tc.want, got)
			back, err := parsePath(got)
			require.NoError(t, err)
			require.Equal(t, tc.segs, back)
		})
	}
}

func FuzzParsePath(f *testing.F) {
	for _, s := range []string{"/", "/a/b", "/api/vhosts/%2F", "/a/%2e%2e/b", "/a%5Cb", "/a//b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		segs, err := parsePath(in)
		if err != nil {
			return
		}
		// Whatever is accepted re-encodes to a path that parses back to the
		// same segments, and no accepted segment is a dot segment.
		for _, s := range segs {
			require.False(t, isDotSegment(s), "accepted dot segment in %q", in)
			require.NotContains(t, s, "\\")
			require.NotContains(t, s, "\x00")
		}
		enc := escapeSegments(segs)
		if len(segs) == 0 || len(enc) > maxPathBytes {
			return // re-encoding may grow the path past the limit
		}
		back, err := parsePath(enc)
		require.NoError(t, err)
		require.Equal(t, segs, back)
	})
}
