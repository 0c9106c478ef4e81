package certs

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/elevate-pam/elevate/internal/clocktest"
)

// pair is one generated certificate and its key, in PEM.
type pair struct{ cert, key []byte }

func newPair(t *testing.T, serial int64) pair {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial),
		Subject:      pkix.Name{CommonName: "elevate.test"},
		DNSNames:     []string{"elevate.test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	require.NoError(t, err)
	kder, err := x509.MarshalPKCS8PrivateKey(k)
	require.NoError(t, err)
	return pair{
		cert: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		key:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}),
	}
}

// replace writes a file the way renewal tools do: a new file renamed over
// the old one.
func replace(t *testing.T, path string, b []byte) {
	t.Helper()
	tmp := path + ".new"
	require.NoError(t, os.WriteFile(tmp, b, 0o600))
	require.NoError(t, os.Rename(tmp, path))
}

// syncBuffer is a log destination tests read while handshakes write.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

type fixture struct {
	t                 *testing.T
	certFile, keyFile string
	clock             *clocktest.Clock
	logs              *syncBuffer
	r                 *Reloader
}

func newFixture(t *testing.T, serial int64) *fixture {
	t.Helper()
	dir := t.TempDir()
	f := &fixture{t: t, certFile: filepath.Join(dir, "tls.crt"), keyFile: filepath.Join(dir, "tls.key"),
		clock: clocktest.New(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)), logs: &syncBuffer{}}
	f.write(newPair(t, serial))
	r, err := New(Config{CertFile: f.certFile, KeyFile: f.keyFile, Now: f.clock.Now,
		Logger: slog.New(slog.NewTextHandler(f.logs, nil))})
	require.NoError(t, err)
	f.r = r
	return f
}

func (f *fixture) write(p pair) {
	replace(f.t, f.certFile, p.cert)
	replace(f.t, f.keyFile, p.key)
}

// serial is what a handshake now serves.
func (f *fixture) serial() int64 {
	f.t.Helper()
	c, err := f.r.GetCertificate(&tls.ClientHelloInfo{})
	require.NoError(f.t, err)
	return c.Leaf.SerialNumber.Int64()
}

// TestRenewal walks one pair of files through the changes a renewal can
// bring, with the clock under the test's control.
func TestRenewal(t *testing.T) {
	f := newFixture(t, 1)
	steps := []struct {
		name   string
		change func()
		wait   time.Duration
		want   int64
		logged string
	}{
		{name: "initial pair", want: 1},
		{name: "renewed, interval not yet passed", change: func() { f.write(newPair(t, 2)) }, wait: 500 * time.Millisecond, want: 1},
		{name: "renewed, interval passed", wait: 500 * time.Millisecond, want: 2, logged: "TLS certificate loaded"},
		{name: "garbage certificate keeps the old one", change: func() { replace(t, f.certFile, []byte("not a certificate")) }, wait: time.Second, want: 2, logged: "reload failed"},
		{name: "key of another pair keeps the old one", change: func() { p := newPair(t, 3); replace(t, f.certFile, p.cert); replace(t, f.keyFile, newPair(t, 4).key) }, wait: time.Second, want: 2, logged: "private key does not match"},
		{name: "files removed keeps the old one", change: func() { require.NoError(t, os.Remove(f.certFile)); require.NoError(t, os.Remove(f.keyFile)) }, wait: time.Second, want: 2, logged: "no such file"},
		{name: "a good pair again", change: func() { f.write(newPair(t, 5)) }, wait: time.Second, want: 5, logged: "TLS certificate loaded"},
		{name: "rewritten in place", change: func() {
			p := newPair(t, 6)
			require.NoError(t, os.WriteFile(f.certFile, append(p.cert, bytes.Repeat([]byte("\n"), 64)...), 0o600))
			require.NoError(t, os.WriteFile(f.keyFile, append(p.key, bytes.Repeat([]byte("\n"), 64)...), 0o600))
		}, wait: time.Second, want: 6},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			before := len(f.logs.String())
			if s.change != nil {
				s.change()
			}
			f.clock.Add(s.wait)
			require.Equal(t, s.want, f.serial())
			if s.logged != "" {
				require.Contains(t, f.logs.String()[before:], s.logged)
			}
		})
	}
}

// TestFailedPairReportedOnce: a broken pair is logged when it appears, not
// at every look.
func TestFailedPairReportedOnce(t *testing.T) {
	f := newFixture(t, 1)
	replace(t, f.keyFile, []byte("not a key"))
	for range 5 {
		f.clock.Add(time.Second)
		require.Equal(t, int64(1), f.serial())
	}
	require.Equal(t, 1, bytes.Count([]byte(f.logs.String()), []byte("reload failed")), f.logs.String())
}

// TestReload: Reload reads the files at once, and reports a broken pair.
func TestReload(t *testing.T) {
	f := newFixture(t, 1)
	f.write(newPair(t, 2))
	require.NoError(t, f.r.Reload())
	require.Equal(t, int64(2), f.serial(), "without waiting for the interval")

	replace(t, f.certFile, []byte("not a certificate"))
	err := f.r.Reload()
	require.ErrorContains(t, err, f.certFile)
	require.Equal(t, int64(2), f.serial())
}

func TestNew(t *testing.T) {
	dir := t.TempDir()
	good := newPair(t, 1)
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, b, 0o600))
		return p
	}
	cert, key := write("good.crt", good.cert), write("good.key", good.key)
	otherKey := write("other.key", newPair(t, 2).key)
	garbage := write("garbage", []byte("-----BEGIN CERTIFICATE-----\nbm90\n-----END CERTIFICATE-----\n"))
	for _, tc := range []struct {
		name    string
		cfg     Config
		wantErr string
	}{
		{name: "good pair", cfg: Config{CertFile: cert, KeyFile: key}},
		{name: "no files named", cfg: Config{}, wantErr: "both a certificate file and a key file"},
		{name: "missing key file", cfg: Config{CertFile: cert}, wantErr: "both a certificate file and a key file"},
		{name: "certificate file absent", cfg: Config{CertFile: filepath.Join(dir, "absent"), KeyFile: key}, wantErr: "absent"},
		{name: "key of another pair", cfg: Config{CertFile: cert, KeyFile: otherKey}, wantErr: "does not match"},
		{name: "garbage certificate", cfg: Config{CertFile: garbage, KeyFile: key}, wantErr: "garbage"},
		{name: "negative interval", cfg: Config{CertFile: cert, KeyFile: key, Interval: -time.Second}, wantErr: "interval"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.cfg)
			if tc.wantErr == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tc.wantErr)
		})
	}
}

// TestHandshake: a real handshake sees the served certificate; TLS 1.1 and
// older are refused.
func TestHandshake(t *testing.T) {
	f := newFixture(t, 7)
	pool := x509.NewCertPool()
	b, err := os.ReadFile(f.certFile)
	require.NoError(t, err)
	require.True(t, pool.AppendCertsFromPEM(b))
	for _, tc := range []struct {
		name   string
		max    uint16
		wantOK bool
	}{
		{name: "TLS 1.3", max: tls.VersionTLS13, wantOK: true},
		{name: "TLS 1.2", max: tls.VersionTLS12, wantOK: true},
		{name: "TLS 1.1 refused", max: tls.VersionTLS11},
		{name: "TLS 1.0 refused", max: tls.VersionTLS10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cc, sc := net.Pipe()
			defer cc.Close()
			defer sc.Close()
			srvErr := make(chan error, 1)
			go func() { srvErr <- tls.Server(sc, f.r.TLSConfig()).Handshake(); sc.Close() }()
			client := tls.Client(cc, &tls.Config{RootCAs: pool, ServerName: "elevate.test", MinVersion: tls.VersionTLS10, MaxVersion: tc.max})
			err := client.Handshake()
			if !tc.wantOK {
				require.Error(t, err)
				require.Error(t, <-srvErr)
				return
			}
			require.NoError(t, err)
			require.NoError(t, <-srvErr)
			require.Equal(t, int64(7), client.ConnectionState().PeerCertificates[0].SerialNumber.Int64())
		})
	}
}

// TestClientCertificate: the same pair serves the client side, renewed
// the same way.
func TestClientCertificate(t *testing.T) {
	f := newFixture(t, 1)
	c, err := f.r.GetClientCertificate(&tls.CertificateRequestInfo{})
	require.NoError(t, err)
	require.Equal(t, int64(1), c.Leaf.SerialNumber.Int64())
	f.write(newPair(t, 2))
	f.clock.Add(time.Second)
	c, err = f.r.GetClientCertificate(&tls.CertificateRequestInfo{})
	require.NoError(t, err)
	require.Equal(t, int64(2), c.Leaf.SerialNumber.Int64())
}
