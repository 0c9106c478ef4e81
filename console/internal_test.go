package console

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/elevate-pam/elevate/internal/clocktest"
)

// TestLocalPath: after sign-in the browser goes back only to a path of the
// console, never to another site.
func TestLocalPath(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", "/"},
		{"/", "/"},
		{"/requests/req-1", "/requests/req-1"},
		{"/audit?subject=bob&since=2026-01-01", "/audit?subject=bob&since=2026-01-01"},
		{"//evil.example/x", "/"},
		{"/\\evil.example", "/"},
		{"https://evil.example/", "/"},
		{"evil.example", "/"},
		{"javascript:alert(1)", "/"},
		{"/auth/login", "/"},
		{"/x\r\nSet-Cookie: a=b", "/"},
		{"/%2F%2Fevil.example", "/%2F%2Fevil.example"},
	} {
		require.Equal(t, tc.want, localPath(tc.in), tc.in)
	}
}

// TestSessionStoreBounded: the store keeps at most its bound, dropping the
// expired first and then the oldest.
func TestSessionStoreBounded(t *testing.T) {
	clk := clocktest.New(time.Now())
	s := newSessionStore(3, clk.Now)
	var ids []string
	for i := range 3 {
		id, err := s.create(user{Subject: "u"}, "tok", clk.Now().Add(time.Duration(i+1)*time.Hour))
		require.NoError(t, err)
		ids = append(ids, id)
		clk.Add(time.Second)
	}
	id4, err := s.create(user{Subject: "u"}, "tok", clk.Now().Add(time.Hour))
	require.NoError(t, err)
	require.Equal(t, 3, s.len())
	_, ok := s.get(ids[0])
	require.False(t, ok, "the oldest session made room")
	_, ok = s.get(id4)
	require.True(t, ok)
	clk.Add(90 * time.Minute) // id4 has expired, ids[1] is the oldest
	id5, err := s.create(user{Subject: "u"}, "tok", clk.Now().Add(time.Hour))
	require.NoError(t, err)
	require.Equal(t, 3, s.len())
	for _, id := range []string{ids[1], ids[2], id5} {
		_, ok = s.get(id)
		require.True(t, ok, "expired sessions go before live ones")
	}
	_, ok = s.get(id4)
	require.False(t, ok)
}

// TestLoginStore: a sign-in is found once, only while young.
func TestLoginStore(t *testing.T) {
	clk := clocktest.New(time.Now())
	s := newLoginStore(2, time.Minute, clk.Now)
	id, l, err := s.start("/requests")
	require.NoError(t, err)
	require.NotEqual(t, l.state, l.nonce)
	require.Len(t, l.verifier, 43)
	got, ok := s.take(id)
	require.True(t, ok)
	require.Equal(t, l, got)
	_, ok = s.take(id)
	require.False(t, ok, "used once")
	id, _, err = s.start("/")
	require.NoError(t, err)
	clk.Add(time.Minute)
	_, ok = s.take(id)
	require.False(t, ok, "too old")
	for range 5 {
		_, _, err := s.start("/")
		require.NoError(t, err)
	}
	require.LessOrEqual(t, len(s.byKey), 2)
}
