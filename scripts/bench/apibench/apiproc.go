package apibench

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/stockpipe/stock/scripts/bench/proc"
)

// apiProcess is the query API program run as its own process, as users run
// it: its own Go runtime (scheduler, GC), its default configuration, its
// logs in a file whose growth the bench reports.
type apiProcess struct {
	*proc.Proc
	addr      string
	pprofAddr string // empty without profiling
	logPath   string
}

// startAPI builds the query-api program into dir (or runs bin, when given)
// and starts it on a free loopback port over the given Redis prefix, with
// extra flags appended. The Redis timeout is raised from its 500ms default:
// on a machine shared with other work a read can take that long, and a 503
// would end the run; the bench measures speed, not the timeout.
func startAPI(ctx context.Context, dir, bin, redisAddr, prefix string, profile bool, extra []string) (*apiProcess, error) {
	if bin == "" {
		bin = filepath.Join(dir, "query-api")
		build := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/stockpipe/stock/query-api")
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			return nil, fmt.Errorf("building query-api: %w", err)
		}
	}
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	p := &apiProcess{addr: addr, logPath: filepath.Join(dir, "query-api.log")}
	args := []string{"--addr", addr, "--redis-addr", redisAddr, "--redis-prefix", prefix, "--redis-timeout", "5s"}
	if profile {
		if p.pprofAddr, err = freeAddr(); err != nil {
			return nil, err
		}
		args = append(args, "--pprof-addr", p.pprofAddr)
	}
	if p.Proc, err = proc.Start("query-api", dir, bin, append(args, extra...)...); err != nil {
		return nil, err
	}
	for deadline := time.Now().Add(30 * time.Second); ; {
		res, err := http.Get("http://" + addr + "/healthz")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == 200 {
				return p, nil
			}
		}
		if done, err := p.Exited(); done {
			return nil, fmt.Errorf("query-api exited at start (%v); its log: %s", err, p.logPath)
		}
		if time.Now().After(deadline) {
			_ = p.Stop(15 * time.Second)
			return nil, fmt.Errorf("query-api did not answer /healthz within 30s; its log: %s", p.logPath)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// logBytes is the size of everything the API logged so far.
func (p *apiProcess) logBytes() int64 {
	fi, err := os.Stat(p.logPath)
	if err != nil {
		return 0
	}
	return fi.Size()
}

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("finding a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}
