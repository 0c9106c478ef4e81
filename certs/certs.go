// Package certs serves a TLS certificate from a pair of PEM files and picks
// up renewed files without a restart.
//
// The files are looked at during handshakes, at most once per interval; a
// pair is read again only when a file's identity, size or modification time
// changed, or when Reload is called (on SIGHUP, say). A pair that does not
// load leaves the running certificate in place and is reported once.
package certs

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// Config says which files to serve and how often to look at them.
type Config struct {
	// CertFile holds the PEM certificate chain, leaf first. Required.
	CertFile string
	// KeyFile holds the PEM private key of the leaf. Required.
	KeyFile string
	// Interval is the least time between two looks at the files.
	// Default 1s.
	Interval time.Duration
	// Now is the clock that paces the looks. Default time.Now.
	Now func() time.Time
	// Logger receives reloads and failed reloads. Default: discard.
	Logger *slog.Logger
}

// Reloader holds the certificate loaded last from its files. Its methods
// are safe for concurrent use.
type Reloader struct {
	cfg  Config
	cert atomic.Pointer[tls.Certificate]

	// mu guards the fields below; a handshake that finds it held serves
	// the current certificate rather than wait.
	mu      sync.Mutex
	checked time.Time
	seen    [2]os.FileInfo
}

// New loads the pair once; an error names the files.
func New(c Config) (*Reloader, error) {
	if c.CertFile == "" || c.KeyFile == "" {
		return nil, errors.New("certs: both a certificate file and a key file are required")
	}
	if c.Interval < 0 {
		return nil, errors.New("certs: interval must not be negative")
	}
	if c.Interval == 0 {
		c.Interval = time.Second
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	r := &Reloader{cfg: c}
	r.seen = r.stat()
	cert, err := r.load()
	if err != nil {
		return nil, err
	}
	r.cert.Store(cert)
	r.checked = c.Now()
	return r, nil
}

// TLSConfig is a server configuration that serves the current certificate
// with TLS 1.2 or later.
func (r *Reloader) TLSConfig() *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: r.GetCertificate}
}

// GetCertificate serves the current certificate, after looking at the files
// when the interval has passed. It fits tls.Config.GetCertificate.
func (r *Reloader) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	r.maybeReload()
	return r.cert.Load(), nil
}

// GetClientCertificate is GetCertificate for the client side of a
// connection. It fits tls.Config.GetClientCertificate.
func (r *Reloader) GetClientCertificate(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	r.maybeReload()
	return r.cert.Load(), nil
}

// Reload reads the pair now, changed or not. On error the running
// certificate stays.
func (r *Reloader) Reload() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.checked = r.cfg.Now()
	r.seen = r.stat()
	return r.swap()
}

func (r *Reloader) maybeReload() {
	if !r.mu.TryLock() {
		return
	}
	defer r.mu.Unlock()
	now := r.cfg.Now()
	if now.Sub(r.checked) < r.cfg.Interval && !now.Before(r.checked) {
		return
	}
	r.checked = now
	st := r.stat()
	if sameFile(st[0], r.seen[0]) && sameFile(st[1], r.seen[1]) {
		return
	}
	r.seen = st
	_ = r.swap()
}

// swap loads the pair and serves it, or reports why not; mu is held.
func (r *Reloader) swap() error {
	cert, err := r.load()
	if err != nil {
		r.cfg.Logger.Error("TLS certificate reload failed; the running certificate stays",
			"cert_file", r.cfg.CertFile, "key_file", r.cfg.KeyFile, "err", err)
		return err
	}
	r.cert.Store(cert)
	r.cfg.Logger.Info("TLS certificate loaded", "cert_file", r.cfg.CertFile,
		"serial", cert.Leaf.SerialNumber.String(), "not_after", cert.Leaf.NotAfter.UTC().Format(time.RFC3339))
	return nil
}

func (r *Reloader) load() (*tls.Certificate, error) {
	cert, err := tls.LoadX509KeyPair(r.cfg.CertFile, r.cfg.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("certs: loading %s and %s: %w", r.cfg.CertFile, r.cfg.KeyFile, err)
	}
	if cert.Leaf == nil {
		if cert.Leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return nil, fmt.Errorf("certs: %s: %w", r.cfg.CertFile, err)
		}
	}
	return &cert, nil
}

func (r *Reloader) stat() [2]os.FileInfo {
	var st [2]os.FileInfo
	for i, f := range []string{r.cfg.CertFile, r.cfg.KeyFile} {
		if fi, err := os.Stat(f); err == nil {
			st[i] = fi
		}
	}
	return st
}

// sameFile reports whether two looks at a path found the same content, as
// far as its identity, size and modification time tell; two failed looks
// are the same.
func sameFile(a, b os.FileInfo) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return os.SameFile(a, b) && a.Size() == b.Size() && a.ModTime().Equal(b.ModTime())
}
