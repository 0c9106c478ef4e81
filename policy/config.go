package policy

import (
	"fmt"
	"io/fs"

	"github.com/open-policy-agent/opa/v1/ast"
)

// Defaults of Config.
const (
	DefaultQuery        = "data.elevate.decision"
	DefaultCatalogQuery = "data.elevate.catalog_index"
)

// Config configures an Engine. The fields with a yaml key are in the
// policy section of elevate's configuration file.
type Config struct {
	// Bundle holds the policy: *.rego modules (files ending in _test.rego
	// are skipped) and data.json, data.yaml or data.yml files, each merged
	// at the path of its directory. Required.
	Bundle fs.FS `yaml:"-"`

	// Query is the reference to the decision document, evaluated per call.
	// Default "data.elevate.decision".
	Query string `yaml:"-"`

	// CatalogQuery is the reference to the catalog index, evaluated once per
	// load. Default "data.elevate.catalog_index".
	CatalogQuery string `yaml:"-"`

	// Upstreams, when not nil, are the names of the configured upstreams:
	// a route table for any other upstream is then refused, and a
	// configured upstream that no route reaches is a warning
	// (Engine.Warnings). Nil leaves both unchecked.
	Upstreams []string `yaml:"-"`

	// CacheSize is how many decisions the engine remembers, keyed on the
	// whole input document, when the bundle allows it (see Engine.Cacheable).
	// Default DefaultCacheSize (4096); a negative value turns the cache off.
	CacheSize int `yaml:"decision_cache"`
}

// Validate reports the first problem of c, naming its key. Empty queries are
// valid: they stand for their defaults.
func (c Config) Validate() error {
	if c.Bundle == nil {
		return fmt.Errorf("policy.bundle: required")
	}
	if c.Query != "" {
		if _, err := parseDataRef(c.Query); err != nil {
			return fmt.Errorf("policy.query: %w", err)
		}
	}
	if c.CatalogQuery != "" {
		if _, err := parseDataRef(c.CatalogQuery); err != nil {
			return fmt.Errorf("policy.catalog_query: %w", err)
		}
	}
	return nil
}

func (c Config) withDefaults() Config {
	if c.Query == "" {
		c.Query = DefaultQuery
	}
	if c.CatalogQuery == "" {
		c.CatalogQuery = DefaultCatalogQuery
	}
	if c.CacheSize == 0 {
		c.CacheSize = DefaultCacheSize
	}
	return c
}

// parseDataRef accepts a ground reference below data, such as
// data.elevate.decision or data["my-policy"].decision.
func parseDataRef(s string) (ast.Ref, error) {
	ref, err := ast.ParseRef(s)
	if err != nil || len(ref) < 2 || !ref.HasPrefix(ast.DefaultRootRef) || !ref.IsGround() {
		return nil, fmt.Errorf("must be a reference into data such as %q, got %q", DefaultQuery, s)
	}
	return ref, nil
}
