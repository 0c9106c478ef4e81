package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/elevate-pam/elevate/proxy"
	"github.com/elevate-pam/elevate/proxy/api"
)

func caCmd(g *globals) *cobra.Command {
	var dataDir string
	c := &cobra.Command{
		Use:   "ca [--data-dir DIR]",
		Short: "Print the CA certificate that forward-mode HTTPS interception uses",
		Long: "Prints, in PEM, the certificate of the CA that signs the certificates elevate presents\n" +
			"for intercepted HTTPS hosts: DATA_DIR/ca.crt when it exists, else the one the server\n" +
			"at --server uses. Give it to tools that use elevate as HTTPS_PROXY, for example:\n" +
			"  elevate ca > elevate-ca.pem; curl --cacert elevate-ca.pem ...",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			pemBytes, err := os.ReadFile(filepath.Join(dataDir, proxy.CACertFile))
			switch {
			case err == nil:
			case errors.Is(err, fs.ErrNotExist) && !cmd.Flags().Changed("data-dir"):
				if pemBytes, err = fetch[[]byte](cmd, g, "GET", "/v1/ca", nil); err != nil {
					return err
				}
			default:
				return fmt.Errorf("--data-dir: %v", err)
			}
			_, err = cmd.OutOrStdout().Write(pemBytes)
			return err
		},
	}
	dataDirFlag(c, &dataDir, "data directory of serve --dev")
	return c
}

func connectCmd(g *globals) *cobra.Command {
	var listen, proxyURL string
	c := &cobra.Command{
		Use:   "connect UPSTREAM [--listen ADDR]",
		Short: "Serve an upstream on a local address, with your token added to every call",
		Long: "For tools that take an address but cannot send a token or use a proxy (the caddy CLI,\n" +
			"for example): every call to the local address goes to the upstream's route on the\n" +
			"elevate proxy with your token, and is judged like any other.\n\n" +
			"  elevate connect caddy --listen 127.0.0.1:2019 &\n" +
			"  caddy reload --address 127.0.0.1:2019 --config caddy.json",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if g.token == "" {
				return exitError{code: exitNoServer, msg: "no token to add to the calls: set --token or ELEVATE_TOKEN"}
			}
			cl, err := newClient(g)
			if err != nil {
				return err
			}
			var info struct {
				ProxyURL  string             `json:"proxy_url"`
				Upstreams []api.UpstreamInfo `json:"upstreams"`
			}
			if err := cl.do(cmd.Context(), "GET", "/v1/upstreams", nil, &info); err != nil {
				return err
			}
			var up *api.UpstreamInfo
			for i := range info.Upstreams {
				if info.Upstreams[i].Name == args[0] {
					up = &info.Upstreams[i]
				}
			}
			if up == nil {
				names := make([]string, 0, len(info.Upstreams))
				for _, u := range info.Upstreams {
					names = append(names, u.Name)
				}
				return fmt.Errorf("no upstream named %q (known: %s)", args[0], strings.Join(names, ", "))
			}
			if proxyURL == "" {
				proxyURL = info.ProxyURL
			}
			target, err := url.Parse(proxyURL)
			if err != nil || (target.Scheme != "http" && target.Scheme != "https") || target.Host == "" {
				return usageError("--proxy: %q is not an http(s) URL", proxyURL)
			}
			ln, err := net.Listen("tcp", listen)
			if err != nil {
				return fmt.Errorf("--listen: %v", err)
			}
			srv := &http.Server{Handler: connectHandler(target, *up, g.token, cl.http.Transport), ReadHeaderTimeout: 10 * time.Second}
			fmt.Fprintf(cmd.ErrOrStderr(), "elevate: serving %s on http://%s through %s\n", up.Name, ln.Addr(), target)
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			go func() {
				<-ctx.Done()
				sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				_ = srv.Shutdown(sctx)
			}()
			if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
				return err
			}
			return nil
		},
	}
	c.Flags().StringVar(&listen, "listen", "127.0.0.1:0", "local address to serve on (keep it on loopback)")
	c.Flags().StringVar(&proxyURL, "proxy", "", "the elevate proxy's URL (default: as the server reports it)")
	return c
}

// connectHandler forwards every call to the upstream's route on the proxy:
// under its prefix, or with its host as Host when it has none. The caller's
// own Authorization is replaced by the token. tr is the CLI's transport, so
// a proxy listener serving TLS from a private CA is trusted by --ca-file.
func connectHandler(proxyURL *url.URL, up api.UpstreamInfo, token string, tr http.RoundTripper) http.Handler {
	prefix := strings.TrimSuffix(up.Prefix, "/")
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			u := *proxyURL
			// The path goes on exactly as the tool sent it, encoded
			// segments and all: the proxy judges it.
			esc := strings.TrimSuffix(proxyURL.EscapedPath(), "/") + prefix + pr.In.URL.EscapedPath()
			u.Path, _ = url.PathUnescape(esc)
			u.RawPath = esc
			u.RawQuery = pr.In.URL.RawQuery
			pr.Out.URL = &u
			pr.Out.Host = proxyURL.Host
			if up.Prefix == "" && len(up.Hosts) > 0 {
				pr.Out.Host = up.Hosts[0]
			}
			pr.Out.Header.Set("Authorization", "Bearer "+token)
		},
		FlushInterval: -1,
		Transport:     tr,
	}
	return rp
}
