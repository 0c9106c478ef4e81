package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// proc is a child process the harness started. Each runs in a process group
// of its own, so that stopping it also stops what it started (nginx's
// workers).
type proc struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
	err  error // set before done closes
}

// procs are the children still running; stopAll stops them in reverse
// order of start.
type procs struct {
	mu   sync.Mutex
	list []*proc
	dir  string // where each child's output goes, as NAME.log
}

// start runs bin with args and env added to the harness's own, its output
// in dir/NAME.log.
func (ps *procs) start(name string, env []string, bin string, args ...string) (*proc, error) {
	logPath := filepath.Join(ps.dir, name+".log")
	out, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = out, out
	// A group of its own, and killed if the harness dies without
	// stopping it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		out.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		out.Close()
		close(p.done)
	}()
	ps.mu.Lock()
	ps.list = append(ps.list, p)
	ps.mu.Unlock()
	return p, nil
}

// exited reports whether p has ended, and how.
func (p *proc) exited() (bool, error) {
	select {
	case <-p.done:
		return true, p.err
	default:
		return false, nil
	}
}

// tail is the end of p's output, for error messages.
func (p *proc) tail() string {
	b, err := os.ReadFile(p.log)
	if err != nil {
		return ""
	}
	s := strings.TrimSpace(string(b))
	if len(s) > 2000 {
		s = "..." + s[len(s)-2000:]
	}
	return s
}

// stop sends SIGTERM to p's group and waits up to 10s, then kills it.
func (ps *procs) stop(p *proc) {
	if p == nil {
		return
	}
	pgid := p.cmd.Process.Pid
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		<-p.done
	}
	// Stragglers of the group (an nginx worker whose master is gone).
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	ps.mu.Lock()
	defer ps.mu.Unlock()
	for i, q := range ps.list {
		if q == p {
			ps.list = append(ps.list[:i], ps.list[i+1:]...)
			break
		}
	}
}

// stopAll stops every child still running, the last started first.
func (ps *procs) stopAll() {
	for {
		ps.mu.Lock()
		n := len(ps.list)
		var p *proc
		if n > 0 {
			p = ps.list[n-1]
		}
		ps.mu.Unlock()
		if p == nil {
			return
		}
		ps.stop(p)
	}
}

// freePorts returns n distinct loopback ports that were free a moment ago.
func freePorts(n int) ([]int, error) {
	var lns []net.Listener
	defer func() {
		for _, l := range lns {
			l.Close()
		}
	}()
	ports := make([]int, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		lns = append(lns, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// waitHTTP polls url until check accepts a response, p exits, or timeout
// passes.
func waitHTTP(ctx context.Context, p *proc, url string, timeout time.Duration, check func(*http.Response) bool) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	hc := &http.Client{Timeout: time.Second}
	for {
		if p != nil {
			if done, err := p.exited(); done {
				return fmt.Errorf("%s exited (%v) before it served %s:\n%s", p.name, err, url, p.tail())
			}
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if resp, err := hc.Do(req); err == nil {
			ok := check(resp)
			resp.Body.Close()
			if ok {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			if p != nil {
				return fmt.Errorf("%s did not serve %s in %s:\n%s", p.name, url, timeout, p.tail())
			}
			return errors.New(url + " did not answer in " + timeout.String())
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// anyAnswer accepts any HTTP response.
func anyAnswer(*http.Response) bool { return true }

// status200 accepts a 200.
func status200(r *http.Response) bool { return r.StatusCode == http.StatusOK }
