package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/elevate-pam/elevate/rego"
)

// Names the benchmark's bundle and setup use.
const (
	hotTask        = `Bench\Invoke-Call`
	fillTaskFormat = `Bench\Task-%04d`
	upstreamName   = "bench"
	upstreamPrefix = "/bench/"
	approverGroup  = "approvers"
	adminGroup     = "admins"
)

// writeBundle writes elevate's default bundle (rego.Bundle) to dir with
// the benchmark's catalog added as catalog/bench.rego.
func writeBundle(dir, benchCatalog string) error {
	err := fs.WalkDir(rego.Bundle, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		target := filepath.Join(dir, path)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		b, err := fs.ReadFile(rego.Bundle, path)
		if err != nil {
			return err
		}
		return os.WriteFile(target, b, 0o644)
	})
	if err != nil {
		return fmt.Errorf("bundle: %w", err)
	}
	b, err := os.ReadFile(benchCatalog)
	if err != nil {
		return fmt.Errorf("bundle: %w", err)
	}
	return os.WriteFile(filepath.Join(dir, "catalog", "bench.rego"), b, 0o644)
}

// elevateInstance is one `elevate serve` the harness runs.
type elevateInstance struct {
	name             string
	proxyURL, apiURL string
	dataDir          string
	proc             *proc
}

// elevateConfig is the configuration of one instance: non-dev, the shared
// etcd, the benchmark's issuer, the bundle in bundleDir, its own audit log
// (fsync on, as always), and the tiny upstream under /bench/.
func elevateConfig(dataDir, proxyAddr, controlAddr, etcdURL, pubFile, bundleDir, upstreamURL string) ([]byte, error) {
	cfg := map[string]any{
		"proxy_addr":   proxyAddr,
		"control_addr": controlAddr,
		"data_dir":     dataDir,
		"etcd":         map[string]any{"endpoints": []string{etcdURL}},
		"identity": map[string]any{
			"issuers": []map[string]any{{
				"issuer": issuerName, "audience": []string{audience},
				"pem_files": []string{pubFile}, "algorithms": []string{"RS256"},
			}},
		},
		"policy": map[string]any{"dir": bundleDir},
		"audit":  map[string]any{"path": filepath.Join(dataDir, "audit.log")},
		"upstreams": []map[string]any{{
			"name": upstreamName, "url": upstreamURL, "prefix": upstreamPrefix,
		}},
	}
	b, err := yaml.Marshal(cfg)
	if err != nil {
		return nil, fmt.Errorf("elevate config: %w", err)
	}
	return b, nil
}

// apiClient calls elevate's side API.
type apiClient struct {
	base string
	hc   *http.Client
}

func newAPIClient(base string) *apiClient {
	return &apiClient{base: base, hc: &http.Client{Timeout: 30 * time.Second}}
}

// apiError is a side-API answer other than 2xx.
type apiError struct {
	method, path string
	status       int
	body         string
}

func (e *apiError) Error() string {
	return fmt.Sprintf("%s %s: %d %s", e.method, e.path, e.status, e.body)
}

// do sends body as JSON with token and decodes a 2xx answer into out. A
// 429 is retried after its Retry-After, a few times: the side API limits
// each caller's rate.
func (c *apiClient) do(ctx context.Context, method, path, token string, body, out any) error {
	var payload []byte
	if body != nil {
		var err error
		if payload, err = json.Marshal(body); err != nil {
			return err
		}
	}
	for attempt := 0; ; attempt++ {
		req, err := http.NewRequestWithContext(ctx, method, c.base+path, bytes.NewReader(payload))
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer "+token)
		if body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := c.hc.Do(req)
		if err != nil {
			return fmt.Errorf("%s %s: %w", method, path, err)
		}
		b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		if err != nil {
			return fmt.Errorf("%s %s: %w", method, path, err)
		}
		if resp.StatusCode == http.StatusTooManyRequests && attempt < 10 {
			wait := time.Second
			if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 {
				wait = time.Duration(s) * time.Second
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(wait):
			}
			continue
		}
		if resp.StatusCode/100 != 2 {
			return &apiError{method: method, path: path, status: resp.StatusCode, body: string(bytes.TrimSpace(b))}
		}
		if out == nil {
			return nil
		}
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("%s %s: %w", method, path, err)
		}
		return nil
	}
}

// apiRequest is the part of an access request the harness reads.
type apiRequest struct {
	ID     string `json:"id"`
	Status string `json:"status"`
}

// apiPolicy is the part of an approval policy the harness reads.
type apiPolicy struct {
	ID     string `json:"id"`
	Target string `json:"target"`
}

func (c *apiClient) enable(ctx context.Context, admin string) error {
	return c.do(ctx, http.MethodPatch, "/v1/control", admin,
		map[string]any{"enabled": true, "default_approvers": approverGroup}, nil)
}

func (c *apiClient) createPolicy(ctx context.Context, admin, target, approval string) (apiPolicy, error) {
	var p apiPolicy
	err := c.do(ctx, http.MethodPost, "/v1/policies", admin,
		map[string]any{"scope": "task", "target": target, "approval": approval}, &p)
	return p, err
}

func (c *apiClient) submit(ctx context.Context, requester, target string) (apiRequest, error) {
	var r apiRequest
	err := c.do(ctx, http.MethodPost, "/v1/requests", requester,
		map[string]any{"scope": "task", "target": target, "reason": "benchmark", "duration": "4h"}, &r)
	return r, err
}

func (c *apiClient) decide(ctx context.Context, approver, id, action string) (apiRequest, error) {
	var r apiRequest
	err := c.do(ctx, http.MethodPost, "/v1/requests/"+id+"/"+action, approver,
		map[string]any{"comment": "benchmark"}, &r)
	return r, err
}

func (c *apiClient) policies(ctx context.Context, admin string) ([]apiPolicy, error) {
	var out struct {
		Policies []apiPolicy `json:"policies"`
	}
	err := c.do(ctx, http.MethodGet, "/v1/policies", admin, nil, &out)
	return out.Policies, err
}
