package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// diskInfo describes the file system that holds the audit logs and etcd's
// data: what an fsync costs there bounds every durable write.
type diskInfo struct {
	FS, Device   string
	FsyncP50     time.Duration
	FsyncP99     time.Duration
	FsyncSamples int
}

// probeDisk names dir's file system and times n appends of 256 bytes, each
// followed by fsync, as the audit log writes.
func probeDisk(dir string, n int) (diskInfo, error) {
	info := diskInfo{FS: "unknown", Device: "unknown"}
	if b, err := os.ReadFile("/proc/self/mounts"); err == nil {
		best := -1
		for line := range strings.SplitSeq(string(b), "\n") {
			f := strings.Fields(line)
			if len(f) < 3 {
				continue
			}
			mnt := f[1]
			if (dir == mnt || strings.HasPrefix(dir, strings.TrimSuffix(mnt, "/")+"/")) && len(mnt) > best {
				best, info.Device, info.FS = len(mnt), f[0], f[2]
			}
		}
	}
	f, err := os.OpenFile(filepath.Join(dir, "fsync-probe"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return info, fmt.Errorf("disk probe: %w", err)
	}
	defer os.Remove(f.Name())
	defer f.Close()
	rec := append(bytes.Repeat([]byte("x"), 255), '\n')
	took := make([]time.Duration, 0, n)
	for range n {
		start := time.Now()
		if _, err := f.Write(rec); err != nil {
			return info, fmt.Errorf("disk probe: %w", err)
		}
		if err := f.Sync(); err != nil {
			return info, fmt.Errorf("disk probe: %w", err)
		}
		took = append(took, time.Since(start))
	}
	info.FsyncP50, info.FsyncP99, info.FsyncSamples = percentile(took, 50), percentile(took, 99), n
	return info, nil
}
