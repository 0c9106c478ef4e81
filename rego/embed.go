// Package rego holds the default policy bundle of elevate: the decision
// (elevate.rego), the route tables that map HTTP calls of each upstream to
// tasks (catalog/*.yaml), and their tests (*_test.rego), which `go test
// ./rego/` runs on the bundle as the engine reads it.
//
// The binary embeds the bundle; directories named in the configuration are
// layered over it (policy.dirs: their files added, or replacing the file at
// the same path) or replace it (policy.dir). README.md in this directory describes the contract between the
// bundle and the engine, and the route tables.
package rego

import "embed"

// Bundle is the default policy bundle, rooted at the bundle root: elevate.rego
// and the catalog directory, whose route tables (*.yaml) and Rego catalogs
// (*.rego) it embeds alike. It includes the *_test.rego files, which the
// engine skips.
//
//go:embed *.rego catalog
var Bundle embed.FS
