package grants

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"
)

var benchSink []Grant

// BenchmarkLiveGrants looks up a subject with three grants among many grants
// of other subjects: the cost must not grow with the others.
func BenchmarkLiveGrants(b *testing.B) {
	for _, others := range []int{10, 100_000} {
		b.Run(fmt.Sprintf("others=%d", others), func(b *testing.B) {
			f := newFixture(b)
			var ops []clientv3.Op
			flush := func() {
				if len(ops) == 0 {
					return
				}
				_, err := f.cli.Txn(f.ctx()).Then(ops...).Commit()
				require.NoError(b, err)
				ops = ops[:0]
			}
			for i := range others + 3 {
				subject := fmt.Sprintf("user-%d", i)
				if i >= others {
					subject = "alice"
				}
				g := Grant{
					ID: fmt.Sprintf("grt-%d", i), RequestID: fmt.Sprintf("req-%d", i), Subject: subject,
					Scope: ScopeTask, Target: task, NotBefore: clockStart, ExpiresAt: clockStart.Add(time.Hour),
					Approvers: []string{"bob"},
				}
				val, err := json.Marshal(g)
				require.NoError(b, err)
				ops = append(ops, clientv3.OpPut(f.s.kGrants+g.ID, string(val)))
				if len(ops) == 128 {
					flush()
				}
			}
			flush()
			f.run()
			live, _ := f.s.Counts()
			require.Equal(b, others+3, live)
			at := clockStart.Add(time.Minute)
			require.Len(b, f.s.LiveGrants("alice", at), 3)
			b.ReportAllocs()
			for b.Loop() {
				benchSink = f.s.LiveGrants("alice", at)
			}
		})
	}
}
