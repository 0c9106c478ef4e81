package etcdtest

import (
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
)

// Shared is one etcd member for all the tests of a package: started on
// first use, stopped when the package's tests are done, with a key prefix
// of its own for each test. Its zero value is ready to use; a package
// declares one and runs its tests through it:
//
//	var etcd etcdtest.Shared
//
//	func TestMain(m *testing.M) { os.Exit(etcd.Run(m)) }
//
// and a test takes etcd.Client(t) and etcd.Prefix(t).
type Shared struct {
	once     sync.Once
	e        *embed.Etcd
	dir      string
	endpoint string
	err      error
	seq      atomic.Int64
}

// Run runs the package's tests, then stops the member if one started. It
// returns the code for os.Exit.
func (s *Shared) Run(m *testing.M) int {
	code := m.Run()
	s.close()
	return code
}

// Endpoint starts the member unless it runs and returns its client URL.
func (s *Shared) Endpoint() (string, error) {
	s.once.Do(func() {
		s.dir, s.err = os.MkdirTemp("", "etcdtest-")
		if s.err != nil {
			return
		}
		s.e, s.endpoint, s.err = Start(s.dir, "shared")
	})
	return s.endpoint, s.err
}

// Client returns a client of the member, closed when t ends.
func (s *Shared) Client(t testing.TB) *clientv3.Client {
	t.Helper()
	endpoint, err := s.Endpoint()
	if err != nil {
		t.Fatalf("embedded etcd: %v", err)
	}
	return Client(t, endpoint)
}

// Prefix returns a key prefix no other test of the binary uses, also when
// a test runs again (go test -count=N): "/" + the test's name + "-" + a
// sequence number + "/".
func (s *Shared) Prefix(t testing.TB) string {
	name := strings.NewReplacer("/", "_", " ", "_").Replace(t.Name())
	return fmt.Sprintf("/%s-%d/", name, s.seq.Add(1))
}

func (s *Shared) close() {
	if s.e != nil {
		s.e.Close()
	}
	if s.dir != "" {
		_ = os.RemoveAll(s.dir)
	}
}

// Client returns a client of the etcd at endpoints, quiet, closed when t
// ends.
func Client(t testing.TB, endpoints ...string) *clientv3.Client {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: endpoints, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatalf("etcd client: %v", err)
	}
	t.Cleanup(func() { _ = cli.Close() })
	return cli
}
