package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
	"google.golang.org/grpc"

	"github.com/elevate-pam/elevate/certs"
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
	// The two ports must differ: two calls for a free port may well be
	// given the same one, and a member cannot bind it twice.
	for ports.Client == 0 || ports.Client == ports.Peer || !portFree(ports.Client) {
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

// connectEtcd dials the cluster and waits, at most c.StartTimeout, until it
// answers a read under the prefix. A refused user or password ends the wait
// at once; anything else is tried again until then, and the error says what
// the last try met.
func connectEtcd(ctx context.Context, c EtcdConfig, endpoints []string, log *slog.Logger) (*clientv3.Client, error) {
	cc, err := etcdClientConfig(c, endpoints, log)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, c.StartTimeout)
	defer cancel()
	deadline, _ := ctx.Deadline()
	var cli *clientv3.Client
	for {
		if cli == nil {
			// With a user, New authenticates, within DialTimeout.
			try := cc
			try.DialTimeout = min(cc.DialTimeout, max(time.Until(deadline), time.Millisecond))
			cli, err = clientv3.New(try)
		}
		if cli != nil {
			actx, acancel := context.WithTimeout(ctx, c.DialTimeout)
			_, err = cli.Get(actx, c.Prefix+"health-probe", clientv3.WithCountOnly())
			acancel()
			if err == nil {
				return cli, nil
			}
		}
		if authErr := etcdAuthError(c, err); authErr != nil {
			if cli != nil {
				cli.Close()
			}
			return nil, authErr
		}
		select {
		case <-ctx.Done():
			if cli != nil {
				cli.Close()
			}
			msg := fmt.Sprintf("etcd: no answer from %s within %s: %v", strings.Join(endpoints, ","), c.StartTimeout, err)
			if why := diagnoseEtcd(endpoints[0], cc.TLS); why != "" {
				msg += " (" + why + ")"
			}
			return nil, errors.New(msg)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// etcdClientConfig turns the settings into a client configuration: TLS from
// the files for https:// endpoints, the password from its file or variable.
func etcdClientConfig(c EtcdConfig, endpoints []string, log *slog.Logger) (clientv3.Config, error) {
	cc := clientv3.Config{
		Endpoints:            endpoints,
		DialTimeout:          c.DialTimeout,
		DialKeepAliveTime:    10 * time.Second,
		DialKeepAliveTimeout: 3 * time.Second,
		Logger:               zap.NewNop(),
		DialOptions:          []grpc.DialOption{},
	}
	if len(endpoints) > 0 && strings.HasPrefix(endpoints[0], "https://") {
		tc := &tls.Config{MinVersion: tls.VersionTLS12}
		if c.CAFile != "" {
			b, err := os.ReadFile(c.CAFile)
			if err != nil {
				return cc, fmt.Errorf("etcd.ca_file: %w", err)
			}
			tc.RootCAs = x509.NewCertPool()
			if !tc.RootCAs.AppendCertsFromPEM(b) {
				return cc, fmt.Errorf("etcd.ca_file: %s holds no PEM certificate", c.CAFile)
			}
		}
		if c.CertFile != "" {
			r, err := certs.New(certs.Config{CertFile: c.CertFile, KeyFile: c.KeyFile, Logger: log.With("for", "etcd")})
			if err != nil {
				return cc, fmt.Errorf("etcd.cert_file, etcd.key_file: %w", err)
			}
			tc.GetClientCertificate = r.GetClientCertificate
		}
		cc.TLS = tc
	}
	if c.Username != "" {
		var pw string
		if c.PasswordFile != "" {
			b, err := os.ReadFile(c.PasswordFile)
			if err != nil {
				return cc, fmt.Errorf("etcd.password_file: %w", err)
			}
			if pw = strings.TrimSpace(string(b)); pw == "" {
				return cc, fmt.Errorf("etcd.password_file: %s is empty", c.PasswordFile)
			}
		} else if pw = os.Getenv(c.PasswordEnv); pw == "" {
			return cc, fmt.Errorf("etcd.password_env: $%s is empty or unset", c.PasswordEnv)
		}
		cc.Username, cc.Password = c.Username, pw
	}
	return cc, nil
}

// etcdAuthError says, naming the keys, when etcd refused the user: waiting
// longer would not help.
func etcdAuthError(c EtcdConfig, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, rpctypes.ErrAuthFailed):
		return fmt.Errorf("etcd: user %q: wrong user name or password (etcd.username, etcd.password_file or etcd.password_env)", c.Username)
	case errors.Is(err, rpctypes.ErrPermissionDenied):
		who := "this client"
		if c.Username != "" {
			who = fmt.Sprintf("user %q", c.Username)
		}
		return fmt.Errorf("etcd: permission denied: %s may not read and write under %s (etcd.prefix)", who, c.Prefix)
	case errors.Is(err, rpctypes.ErrUserEmpty), errors.Is(err, rpctypes.ErrInvalidAuthToken), errors.Is(err, rpctypes.ErrInvalidAuthMgmt):
		return fmt.Errorf("etcd: authentication needed: %v (etcd.username, etcd.cert_file)", err)
	}
	return nil
}

// diagnoseEtcd connects once to ep the way the client does and says what
// went wrong there, for the start-up error: the gRPC client reports only
// that its deadline passed.
func diagnoseEtcd(ep string, tc *tls.Config) string {
	u, err := url.Parse(ep)
	if err != nil {
		return ""
	}
	conn, err := net.DialTimeout("tcp", u.Host, 2*time.Second)
	if err != nil {
		return err.Error()
	}
	defer conn.Close()
	if tc == nil {
		return ""
	}
	tc = tc.Clone()
	tc.ServerName = u.Hostname()
	tc.NextProtos = []string{"h2"}
	_ = conn.SetDeadline(time.Now().Add(2 * time.Second))
	c := tls.Client(conn, tc)
	if err := c.Handshake(); err != nil {
		return "TLS: " + err.Error()
	}
	// With TLS 1.3 a refused client certificate shows on the first read.
	_ = conn.SetDeadline(time.Now().Add(500 * time.Millisecond))
	if _, err := c.Read(make([]byte, 1)); err != nil {
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() {
			if !errors.Is(err, io.EOF) {
				return "TLS: " + err.Error()
			}
		}
	}
	return ""
}
