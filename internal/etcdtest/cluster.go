package etcdtest

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
)

// readyTimeout bounds the wait for a member to serve.
const readyTimeout = 20 * time.Second

// Cluster is a set of embedded etcd members on loopback that form one etcd
// cluster, each with its own data directory and ports. A member can be
// stopped and started again on the same directory and ports.
//
// Clients reach each member through a front address of its own (Endpoint),
// a relay to the member's client port. Stopping a member closes every
// client connection through its front at once, as the end of an etcd
// process would, instead of waiting for etcd's graceful shutdown to time
// out on open watch streams; while the member is stopped, the front
// accepts connections and closes them.
type Cluster struct {
	members []*Member
}

// Member is one member of a Cluster.
type Member struct {
	name         string
	dir          string
	client, peer url.URL // the member's own listeners
	initial      string  // the initial cluster: name=peer URL, ...
	front        *Relay  // cut while the member is stopped

	mu sync.Mutex
	e  *embed.Etcd // nil while stopped
}

// StartCluster starts an n-member cluster with the members' data in
// subdirectories of dir and waits until every member serves. Members are
// tuned for tests as Start's are, with slightly longer raft ticks. A port
// taken by another process between probing and binding is chosen again, a
// few times. Close stops the cluster.
func StartCluster(dir string, n int) (*Cluster, error) {
	if n < 1 {
		return nil, errors.New("etcdtest: a cluster needs at least one member")
	}
	var lastErr error
	for range 3 {
		c, err := startClusterOnce(dir, n)
		if err == nil {
			return c, nil
		}
		lastErr = err
		for i := range n {
			_ = os.RemoveAll(filepath.Join(dir, memberName(i)))
		}
	}
	return nil, lastErr
}

func memberName(i int) string { return fmt.Sprintf("m%d", i) }

func startClusterOnce(dir string, n int) (*Cluster, error) {
	taken := map[string]bool{}
	free := func() (url.URL, error) {
		for {
			u, err := freeURL()
			if err != nil || !taken[u.Host] {
				taken[u.Host] = true
				return u, err
			}
		}
	}
	c := &Cluster{}
	var initial []string
	for i := range n {
		client, err := free()
		if err != nil {
			c.Close()
			return nil, err
		}
		peer, err := free()
		if err != nil {
			c.Close()
			return nil, err
		}
		front, err := NewRelay(client.Host)
		if err != nil {
			c.Close()
			return nil, err
		}
		front.SetCut(true)
		m := &Member{name: memberName(i), dir: filepath.Join(dir, memberName(i)), client: client, peer: peer, front: front}
		c.members = append(c.members, m)
		initial = append(initial, m.name+"="+peer.String())
	}
	for _, m := range c.members {
		m.initial = strings.Join(initial, ",")
	}
	// Every member must run before any can serve: none is ready until a
	// quorum has elected a leader.
	all := make([]int, n)
	for i := range all {
		all[i] = i
	}
	if err := c.Start(all...); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// Members returns the members, in the order of their names m0, m1, ...
func (c *Cluster) Members() []*Member { return c.members }

// Endpoints returns the client URLs of every member, running or not.
func (c *Cluster) Endpoints() []string {
	out := make([]string, len(c.members))
	for i, m := range c.members {
		out[i] = m.Endpoint()
	}
	return out
}

// Leader returns the index of the member that is the raft leader as the
// running members see it, or -1 when none knows one.
func (c *Cluster) Leader() int {
	ids := map[uint64]int{}
	var lead uint64
	for i, m := range c.members {
		if e := m.running(); e != nil {
			ids[uint64(e.Server.MemberID())] = i
			if l := uint64(e.Server.Leader()); l != 0 {
				lead = l
			}
		}
	}
	if i, ok := ids[lead]; ok && lead != 0 {
		return i
	}
	return -1
}

// Start starts the given stopped members (by index) on their directories
// and ports, and waits until each serves. Members that make up a quorum
// only together must be started by one call. Running members are left
// alone.
func (c *Cluster) Start(members ...int) error {
	for _, i := range members {
		if err := c.members[i].launch(); err != nil {
			return err
		}
	}
	var errs []error
	for _, i := range members {
		errs = append(errs, c.members[i].waitReady())
	}
	return errors.Join(errs...)
}

// Close stops every member and closes their fronts. It may be called any
// number of times.
func (c *Cluster) Close() {
	// One after another: members stopping at the same time wait for each
	// other's shutdown to time out.
	for _, m := range c.members {
		m.Stop()
		m.front.Close()
	}
}

// Name returns the member's name.
func (m *Member) Name() string { return m.name }

// Endpoint returns the URL clients use to reach the member.
func (m *Member) Endpoint() string { return "http://" + m.front.Addr() }

// Running reports whether the member runs.
func (m *Member) Running() bool { return m.running() != nil }

func (m *Member) running() *embed.Etcd {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.e
}

// Stop stops the member: client connections through its front close at
// once, then the member shuts down. Its data stays. Stopping a stopped
// member does nothing.
func (m *Member) Stop() {
	m.mu.Lock()
	e := m.e
	m.e = nil
	m.mu.Unlock()
	m.front.SetCut(true)
	if e != nil {
		e.Close()
	}
}

// Start starts a stopped member on its directory and ports and waits until
// it serves, which needs a quorum of the cluster (see Cluster.Start).
// Starting a running member does nothing.
func (m *Member) Start() error {
	if err := m.launch(); err != nil {
		return err
	}
	return m.waitReady()
}

// launch starts the member unless it runs, without waiting for it.
func (m *Member) launch() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.e != nil {
		return nil
	}
	cfg := embed.NewConfig()
	cfg.Name = m.name
	cfg.Dir = m.dir
	cfg.LogLevel = "error"
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
	cfg.UnsafeNoFsync = true
	// Ticks a little longer than Start's: the members and the processes
	// under test share a small machine, and a late heartbeat should not
	// cost a leader.
	cfg.TickMs = 25
	cfg.ElectionMs = 250
	cfg.ListenClientUrls = []url.URL{m.client}
	cfg.AdvertiseClientUrls = []url.URL{{Scheme: "http", Host: m.front.Addr()}}
	cfg.ListenPeerUrls = []url.URL{m.peer}
	cfg.AdvertisePeerUrls = []url.URL{m.peer}
	cfg.InitialCluster = m.initial
	cfg.InitialClusterToken = "etcdtest"
	if _, err := os.Stat(filepath.Join(m.dir, "member")); err == nil {
		cfg.ClusterState = embed.ClusterStateFlagExisting
	}
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return fmt.Errorf("etcd member %s: %w", m.name, err)
	}
	m.e = e
	m.front.SetCut(false)
	return nil
}

func (m *Member) waitReady() error {
	e := m.running()
	if e == nil {
		return fmt.Errorf("etcd member %s: not running", m.name)
	}
	select {
	case <-e.Server.ReadyNotify():
		return nil
	case err := <-e.Err():
		m.Stop()
		return fmt.Errorf("etcd member %s: %w", m.name, err)
	case <-time.After(readyTimeout):
		m.Stop()
		return fmt.Errorf("etcd member %s did not become ready within %s", m.name, readyTimeout)
	}
}
