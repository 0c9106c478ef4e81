// Package etcdtest starts single-member embedded etcd servers on loopback
// for tests: real etcd, in the test's process, on free ports.
package etcdtest

import (
	"errors"
	"net"
	"net/url"
	"os"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
)

// Start starts a single-member etcd named name with its data in dir,
// listening on free loopback ports, and waits until it serves. It is tuned
// for tests: no fsync, short raft ticks, no logs below errors. A port taken
// by another process between probing and binding is chosen again, a few
// times. It returns the member and its client URL.
func Start(dir, name string) (*embed.Etcd, string, error) {
	var lastErr error
	for range 3 {
		e, endpoint, err := startOnce(dir, name)
		if err == nil {
			return e, endpoint, nil
		}
		lastErr = err
		_ = os.RemoveAll(dir)
	}
	return nil, "", lastErr
}

func startOnce(dir, name string) (*embed.Etcd, string, error) {
	client, err := freeURL()
	if err != nil {
		return nil, "", err
	}
	peer, err := freeURL()
	for err == nil && peer == client {
		peer, err = freeURL()
	}
	if err != nil {
		return nil, "", err
	}
	cfg := embed.NewConfig()
	cfg.Name = name
	cfg.Dir = dir
	cfg.LogLevel = "error"
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
	cfg.UnsafeNoFsync = true
	cfg.TickMs = 10
	cfg.ElectionMs = 100
	cfg.ListenClientUrls = []url.URL{client}
	cfg.AdvertiseClientUrls = []url.URL{client}
	cfg.ListenPeerUrls = []url.URL{peer}
	cfg.AdvertisePeerUrls = []url.URL{peer}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return nil, "", err
	}
	select {
	case <-e.Server.ReadyNotify():
		return e, client.String(), nil
	case err := <-e.Err():
		e.Close()
		return nil, "", err
	case <-time.After(20 * time.Second):
		e.Close()
		return nil, "", errors.New("etcd did not become ready within 20s")
	}
}

func freeURL() (url.URL, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return url.URL{}, err
	}
	defer l.Close()
	return url.URL{Scheme: "http", Host: l.Addr().String()}, nil
}
