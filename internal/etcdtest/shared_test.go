package etcdtest_test

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/elevate-pam/elevate/internal/etcdtest"
)

var etcd etcdtest.Shared

func TestMain(m *testing.M) { os.Exit(etcd.Run(m)) }

func TestShared(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	first, err := etcd.Endpoint()
	require.NoError(t, err)
	again, err := etcd.Endpoint()
	require.NoError(t, err)
	require.Equal(t, first, again, "one member for the package")

	p1, p2 := etcd.Prefix(t), etcd.Prefix(t)
	require.NotEqual(t, p1, p2, "each call a prefix of its own")
	for _, p := range []string{p1, p2} {
		require.True(t, strings.HasPrefix(p, "/TestShared-") && strings.HasSuffix(p, "/"), p)
	}
	t.Run("sub test/with spaces", func(t *testing.T) {
		p := etcd.Prefix(t)
		require.Equal(t, 2, strings.Count(p, "/"), "the test's name is one key segment: %s", p)
	})

	cli := etcd.Client(t)
	_, err = cli.Put(ctx, p1+"k", "v")
	require.NoError(t, err)
	resp, err := cli.Get(ctx, p2, clientv3.WithPrefix())
	require.NoError(t, err)
	require.Zero(t, resp.Count, "another prefix sees nothing")
	resp, err = etcdtest.Client(t, first).Get(ctx, p1+"k")
	require.NoError(t, err)
	require.Len(t, resp.Kvs, 1)
	require.Equal(t, "v", string(resp.Kvs[0].Value))
}
