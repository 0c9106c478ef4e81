// Package etcdtest starts single-member embedded etcd servers on loopback
// for tests: real etcd, in the test's process, on free ports.
package etcdtest

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
)

// Option changes a member's configuration before it starts.
type Option func(*embed.Config)

// ClientTLS makes the member serve clients over TLS with the certificate
// and key in certFile and keyFile, and ask each client for a certificate
// signed by the CA in caFile. The client URL is https.
func ClientTLS(certFile, keyFile, caFile string) Option {
	return func(cfg *embed.Config) {
		for _, urls := range [][]url.URL{cfg.ListenClientUrls, cfg.AdvertiseClientUrls} {
			for i := range urls {
				urls[i].Scheme = "https"
			}
		}
		cfg.ClientTLSInfo.CertFile, cfg.ClientTLSInfo.KeyFile = certFile, keyFile
		cfg.ClientTLSInfo.TrustedCAFile = caFile
		cfg.ClientTLSInfo.ClientCertAuth = true
	}
}

// Start starts a single-member etcd named name with its data in dir,
// listening on free loopback ports, and waits until it serves. It is tuned
// for tests: no fsync, short raft ticks, no logs below errors; opts change
// that. A port taken by another process between probing and binding is
// chosen again, a few times. It returns the member and its client URL.
func Start(dir, name string, opts ...Option) (*embed.Etcd, string, error) {
	var lastErr error
	for range 3 {
		e, endpoint, err := startOnce(dir, name, opts)
		if err == nil {
			return e, endpoint, nil
		}
		lastErr = err
		_ = os.RemoveAll(dir)
	}
	return nil, "", lastErr
}

func startOnce(dir, name string, opts []Option) (*embed.Etcd, string, error) {
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
	for _, o := range opts {
		o(cfg)
	}
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return nil, "", err
	}
	select {
	case <-e.Server.ReadyNotify():
		return e, cfg.AdvertiseClientUrls[0].String(), nil
	case err := <-e.Err():
		e.Close()
		return nil, "", err
	case <-time.After(readyTimeout):
		e.Close()
		return nil, "", fmt.Errorf("etcd did not become ready within %s", readyTimeout)
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
