// Package rego holds the default policy bundle of elevate: the decision
// (elevate.rego), the catalogs that map HTTP calls of each upstream to tasks
// (catalog/*.rego), and their tests (*_test.rego), runnable with
// `opa test rego/`.
//
// The binary embeds the bundle; a directory named in the configuration can
// replace it. README.md in this directory describes the contract between the
// bundle and the engine.
package rego

import "embed"

// Bundle is the default policy bundle, rooted at the bundle root: elevate.rego
// and the catalog directory. It includes the *_test.rego files, which the
// engine skips.
//
//go:embed *.rego catalog
var Bundle embed.FS
