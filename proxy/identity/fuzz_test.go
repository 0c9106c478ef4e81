// Fuzzing of the token front. Threat proved mitigated: a crafted bearer
// token crashes the verifier, makes it accept without a valid signature, or
// makes it spend unbounded time or memory (FuzzTokenFront). Seeds are the
// token corpus of corpus_test.go.
//
// Run longer with:
//
//	go test -run='^$' -fuzz='^FuzzTokenFront$' -fuzztime=30s ./proxy/identity/
package identity

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// maxVerifyTime is far above what one verification costs (well under a
// millisecond); it only catches work that grows without bound.
const maxVerifyTime = 5 * time.Second

func FuzzTokenFront(f *testing.F) {
	env := newCorpusEnv(f)
	for _, tc := range tokenCorpus(f, env) {
		if tc.reason != "" { // only tokens that must be refused
			f.Add(tc.token)
		}
	}
	for _, s := range []string{"", ".", "..", "...", "a.b.c", "e30.e30.", "e30.e30.e30", "eyJ9.eyJ9.x"} {
		f.Add(s)
	}

	f.Fuzz(func(t *testing.T, token string) {
		start := time.Now()
		id, err := env.v.Verify(context.Background(), token)
		elapsed := time.Since(start)

		require.Error(t, err, "a token was accepted")
		require.ErrorIs(t, err, ErrUnauthenticated)
		require.Zero(t, id)
		var r Refusal
		if !errors.Is(err, ErrNoToken) {
			require.ErrorAs(t, err, &r, "every refusal carries one of the fixed reasons")
			require.Equal(t, "unauthenticated: "+string(r), err.Error())
		}
		if len(token) > maxTokenSize {
			require.Equal(t, reasonTooLarge, r, "an oversized token is refused before parsing")
		}
		if checkFront(token) != nil && token != "" {
			require.Contains(t, []Refusal{reasonMalformed, reasonTooLarge}, r)
		}
		if strings.Count(token, ".") != 2 && token != "" {
			require.Contains(t, []Refusal{reasonMalformed, reasonTooLarge}, r)
		}
		require.Less(t, elapsed, maxVerifyTime)
	})
}
