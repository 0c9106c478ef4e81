package test

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestThreatModelCitesRealTests keeps docs/threat-model.md honest: every
// row of its tables names at least one test, and every test or fuzz target
// it names exists in the module (they all run in make test, so existing
// means passing on a green build).
func TestThreatModelCitesRealTests(t *testing.T) {
	doc, err := os.ReadFile("../docs/threat-model.md")
	require.NoError(t, err)
	defined := map[string]bool{}
	def := regexp.MustCompile(`(?m)^func ((?:Test|Fuzz)\w+)\(`)
	require.NoError(t, filepath.WalkDir("..", func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, "_test.go") {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range def.FindAllSubmatch(b, -1) {
			defined[string(m[1])] = true
		}
		return nil
	}))
	cited := regexp.MustCompile("`((?:Test|Fuzz)[A-Za-z0-9]+)")
	rows := 0
	for _, line := range strings.Split(string(doc), "\n") {
		if !regexp.MustCompile(`^\| [A-Z]+\d+ \|`).MatchString(line) {
			continue
		}
		rows++
		names := cited.FindAllStringSubmatch(line, -1)
		require.NotEmpty(t, names, "threat row without a test: %s", line)
		for _, n := range names {
			require.True(t, defined[n[1]], "threat model cites %s, which does not exist", n[1])
		}
	}
	require.GreaterOrEqual(t, rows, 40, "the threat tables were not found")
}
