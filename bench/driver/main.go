// Command driver is the harness behind `make bench` (bench/run.sh calls it).
//
// `driver run` starts, on loopback, a tiny upstream, a plain
// httputil.ReverseProxy in front of it, elevate with every check on, and
// nginx with njs asking OPA; drives each with wrk; measures grant
// propagation between two elevate instances, per-call cost and memory as
// grants and policies grow, and the start-up of `elevate serve --dev`; times
// `kubectl get pods` against a kube-apiserver of its own, directly and
// through elevate; runs the Go benchmarks of the hot path; and writes a
// markdown report. Every
// process it starts is stopped before it returns.
//
// The other subcommands are the servers it starts as child processes:
//
//	driver upstream --addr A             the tiny upstream
//	driver revproxy --addr A --target U  httputil.ReverseProxy to U
//	driver otlp --addr A                 an OTLP/HTTP receiver that discards what it gets
//	driver etcd --addr A --dir D         a one-member etcd (embedded)
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	if err := dispatch(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "driver:", err)
		os.Exit(1)
	}
}

func dispatch(args []string) error {
	if len(args) == 0 {
		return errors.New("usage: driver run|upstream|revproxy|otlp|etcd [flags]")
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	switch args[0] {
	case "run":
		return runCmd(ctx, args[1:])
	case "upstream":
		return upstreamCmd(ctx, args[1:])
	case "revproxy":
		return revproxyCmd(ctx, args[1:])
	case "otlp":
		return otlpCmd(ctx, args[1:])
	case "etcd":
		return etcdCmd(ctx, args[1:])
	default:
		return fmt.Errorf("unknown subcommand %q", args[0])
	}
}
