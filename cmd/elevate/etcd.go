package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
	"google.golang.org/grpc"
)

// embeddedPorts keeps the embedded member's ports stable across restarts of
// the same data dir: the member's peer URL is part of its stored identity.
type embeddedPorts struct {
	Client int `json:"client"`
	Peer   int `json:"peer"`
}

// startEmbeddedEtcd runs a one-member etcd in dir/etcd on loopback. A port
// taken by another process between choosing and binding it is chosen again,
// a few times.
func startEmbeddedEtcd(ctx context.Context, dir string, timeout time.Duration) (*embed.Etcd, string, error) {
	var err error
	for range 4 {
		var e *embed.Etcd
		var url string
		e, url, err = startEmbeddedOnce(ctx, dir, timeout)
		inUse := err != nil && (errors.Is(err, syscall.EADDRINUSE) || strings.Contains(err.Error(), "address already in use"))
		if !inUse {
			return e, url, err
		}
	}
	return nil, "", err
}

func startEmbeddedOnce(ctx context.Context, dir string, timeout time.Duration) (*embed.Etcd, string, error) {
	portsFile := filepath.Join(dir, "etcd-ports.json")
	var ports embeddedPorts
	if b, err := os.ReadFile(portsFile); err == nil {
		_ = json.Unmarshal(b, &ports)
	}
	if ports.Peer == 0 || !portFree(ports.Peer) {
		p, err := freePort()
		if err != nil {
			return nil, "", err
		}
		ports.Peer = p
	}
	if ports.Client == 0 || !portFree(ports.Client) {
		p, err := freePort()
		if err != nil {
			return nil, "", err
		}
		ports.Client = p
	}
	b, _ := json.Marshal(ports)
	if err := os.WriteFile(portsFile, b, 0o600); err != nil {
		return nil, "", fmt.Errorf("data dir: %w", err)
	}

	cfg := embed.NewConfig()
	cfg.Name = "elevate-dev"
	cfg.Dir = filepath.Join(dir, "etcd")
	cfg.LogLevel = "error"
	cfg.Logger = "zap"
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
	clientURL := url.URL{Scheme: "http", Host: fmt.Sprintf("127.0.0.1:%d", ports.Client)}
	peerURL := url.URL{Scheme: "http", Host: fmt.Sprintf("127.0.0.1:%d", ports.Peer)}
	cfg.ListenClientUrls = []url.URL{clientURL}
	cfg.AdvertiseClientUrls = []url.URL{clientURL}
	cfg.ListenPeerUrls = []url.URL{peerURL}
	cfg.AdvertisePeerUrls = []url.URL{peerURL}
	cfg.InitialCluster = cfg.Name + "=" + peerURL.String()
	// One member: elect quickly so that `serve --dev` is ready fast.
	cfg.TickMs = 10
	cfg.ElectionMs = 100
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return nil, "", fmt.Errorf("embedded etcd: %w", err)
	}
	select {
	case <-e.Server.ReadyNotify():
		return e, clientURL.String(), nil
	case err := <-e.Err():
		e.Close()
		return nil, "", fmt.Errorf("embedded etcd: %w", err)
	case <-time.After(timeout):
		e.Server.Stop()
		e.Close()
		return nil, "", errors.New("embedded etcd: not ready in time")
	case <-ctx.Done():
		e.Close()
		return nil, "", ctx.Err()
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func portFree(p int) bool {
	l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
	if err != nil {
		return false
	}
	l.Close()
	return true
}

// connectEtcd dials the cluster and waits, at most timeout, until it answers.
func connectEtcd(ctx context.Context, c EtcdConfig, endpoints []string) (*clientv3.Client, error) {
	cc := clientv3.Config{
		Endpoints:            endpoints,
		DialTimeout:          c.DialTimeout,
		DialKeepAliveTime:    10 * time.Second,
		DialKeepAliveTimeout: 3 * time.Second,
		Logger:               zap.NewNop(),
		DialOptions:          []grpc.DialOption{},
	}
	if c.Username != "" {
		pw, err := os.ReadFile(c.PasswordFile)
		if err != nil {
			return nil, fmt.Errorf("etcd.password_file: %w", err)
		}
		cc.Username, cc.Password = c.Username, strings.TrimSpace(string(pw))
	}
	cli, err := clientv3.New(cc)
	if err != nil {
		return nil, fmt.Errorf("etcd: %w", err)
	}
	deadline := time.Now().Add(c.StartTimeout)
	for {
		actx, cancel := context.WithTimeout(ctx, c.DialTimeout)
		_, err = cli.Get(actx, "health-probe", clientv3.WithCountOnly())
		cancel()
		if err == nil {
			return cli, nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			cli.Close()
			return nil, fmt.Errorf("etcd: no answer from %s within %s: %v", strings.Join(endpoints, ","), c.StartTimeout, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
