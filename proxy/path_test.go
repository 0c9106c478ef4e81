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
		{"encoded question mark", "/a%3Fb/c", nil},
		{"encoded hash", "/a/c%23d", nil},
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
		{"dot dot between encoded slashes", "/api/users/x%2F..%2Fdefinitions", nil},
		{"dot between encoded slashes", "/a/x%2F.%2Fy", nil},
		{"dot dot after an encoded slash", "/a/x%2F..", nil},
		{"dot dot with parameter between encoded slashes", "/a/x%2F..;p%2Fy", nil},
		{"dots inside names between encoded slashes", "/a/x%2F..y%2F...", []string{"a", "x/..y/..."}},
		{"leading parameter", "/a/;x/b", nil},
		{"parameter only", "/a/;", nil},
		{"parameter after a name", "/a/b;x", []string{"a", "b;x"}},
		{"overlong dot", "/a/%C0%AE%C0%AE/b", nil},
		{"overlong slash", "/a/x%C0%AFy", nil},
		{"three-byte overlong dot", "/a/%E0%80%AE", nil},
		{"surrogate", "/a/%ED%A0%80", nil},
		{"invalid byte", "/a/%FF", nil},
		{"truncated sequence", "/a/caf%C3", nil},
		{"fullwidth solidus", "/a/x%EF%BC%8Fy", nil},
		{"fullwidth full stops", "/a/%EF%BC%8E%EF%BC%8E", nil},
		{"two dot leader", "/a/%E2%80%A5", nil},
		{"fullwidth reverse solidus", "/a/x%EF%BC%BCy", nil},
		{"fullwidth question mark", "/a/x%EF%BC%9F", nil},
		{"fullwidth percent", "/a/%EF%BC%85%32%65", nil},
		{"greek question mark is a semicolon", "/a/..%CD%BE", nil},
		{"one dot leader inside a name", "/a/x%E2%80%A4y", nil},
		{"division slash", "/a/x%E2%88%95y", nil},
		{"fraction slash", "/a/x%E2%81%84y", nil},
		{"yen sign", "/a/x%C2%A5y", nil},
		{"won sign", "/a/x%E2%82%A9y", nil},
		{"ideographic full stop", "/a/%E3%80%82%E3%80%82", nil},
		{"ligature without separators", "/a/%EF%AC%81le", []string{"a", "\ufb01le"}},
		{"fullwidth letters", "/a/%EF%BD%81", []string{"a", "\uff41"}},
		{"combining accent", "/a/e%CC%81", []string{"a", "e\u0301"}},
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
		{"percent and colon", []string{"50%:x@y"}, "/50%25:x@y"},
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

// TestEscapeSegmentsEncodesQueryAndHash: "?" and "#" inside a segment are
// encoded, and such a path is not taken back.
func TestEscapeSegmentsEncodesQueryAndHash(t *testing.T) {
	got := escapeSegments([]string{"a?b", "c#d"})
	require.Equal(t, "/a%3Fb/c%23d", got)
	_, err := parsePath(got)
	require.ErrorIs(t, err, ErrAmbiguousPath)
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
