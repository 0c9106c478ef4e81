//go:build !unix

package audit

// lockFile is a no-op where flock is not available; run one writer per log.
func lockFile(string) (func() error, error) {
	return func() error { return nil }, nil
}
