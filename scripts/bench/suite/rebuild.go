package suite

// The rebuild phase: a projector rebuild from offset 0 beside the live one.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/stockpipe/stock/schemas"
	"github.com/stockpipe/stock/scripts/bench/proc"
	"github.com/stockpipe/stock/scripts/bench/redisprefix"
	"github.com/stockpipe/stock/scripts/bench/report"
)

// rebuild times a rebuild of the cache from offset 0: `projector rebuild`
// (a replay into a new generation, then the switch) when the projector has
// that command, else a fresh projector in a new group and key prefix
// catching up to the end of the topic.
func (p *pipeline) rebuild(ctx context.Context) (*report.Rebuild, error) {
	bin := filepath.Join(p.cfg.BinDir, "projector")
	if exec.CommandContext(ctx, bin, "rebuild", "--help").Run() == nil {
		return p.rebuildCommand(ctx, bin)
	}
	return p.rebuildFresh(ctx, bin)
}

// rebuildCommand runs `projector rebuild` on the run's own cache, beside
// the live projector, as an operator would, and reads its own account of
// the replay from its log.
func (p *pipeline) rebuildCommand(ctx context.Context, bin string) (*report.Rebuild, error) {
	topic := p.topic(schemas.TopicLevels)
	_, records, err := p.in.endOffsets(ctx, topic)
	if err != nil {
		return nil, err
	}
	p.log.Info("rebuild: projector rebuild from offset 0", "records", records)
	start := time.Now()
	pr, err := proc.Start("projector-rebuild", p.cfg.LogDir, bin, "rebuild",
		"--brokers", strings.Join(p.cfg.Brokers, ","), "--topic", topic, "--group", p.n.group,
		"--redis-addr", p.cfg.RedisAddr, "--redis-prefix", p.n.redisPrefix, "--metrics-addr", p.cfg.RebuildMetrics)
	if err != nil {
		return nil, err
	}
	if err := pr.Wait(ctx, 5*time.Minute); err != nil {
		_ = pr.Stop(stopTimeout)
		return nil, fmt.Errorf("projector rebuild: %w (see %s/projector-rebuild.log)", err, p.cfg.LogDir)
	}
	wall := time.Since(start)
	cpu, _ := pr.ExitCPU()
	r := &report.Rebuild{Method: "projector rebuild (replay into a new generation, switch readers; beside the live projector)",
		Records: records, Seconds: round2(wall.Seconds()), CPUSeconds: round2(cpu.Seconds())}
	if done, ok := findLogLine(filepath.Join(p.cfg.LogDir, "projector-rebuild.log"), "rebuild done"); ok {
		if n, ok := done["records"].(float64); ok {
			r.Records = int64(n)
		}
		if sw, ok := done["switched_after"].(string); ok {
			if d, err := time.ParseDuration(sw); err == nil {
				r.SwitchSeconds = round2(d.Seconds())
			}
		}
	}
	if r.SwitchSeconds > 0 {
		r.RecordsPerS = round2(float64(r.Records) / r.SwitchSeconds)
	}
	p.log.Info("rebuild done", "seconds", r.Seconds, "switched_after_s", r.SwitchSeconds, "records_per_s", r.RecordsPerS)
	return r, nil
}

// findLogLine returns the fields of the last JSON log line with msg.
func findLogLine(path, msg string) (map[string]any, bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, false
	}
	var found map[string]any
	for _, line := range strings.Split(string(b), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) == nil && m["msg"] == msg {
			found = m
		}
	}
	return found, found != nil
}

// rebuildFresh times a fresh projector (new group, new prefix) replaying
// the levels topic from offset 0 to its current end.
func (p *pipeline) rebuildFresh(ctx context.Context, bin string) (*report.Rebuild, error) {
	topic := p.topic(schemas.TopicLevels)
	ends, records, err := p.in.endOffsets(ctx, topic)
	if err != nil {
		return nil, err
	}
	group := p.n.group + "_rebuild"
	prefix := strings.TrimSuffix(p.n.redisPrefix, ":") + "_rebuild:"
	defer func() {
		p.in.deleteGroups(context.WithoutCancel(ctx), group)
		_, _ = redisprefix.Delete(context.WithoutCancel(ctx), p.in.rdb, prefix)
	}()
	p.log.Info("rebuild: fresh projector from offset 0", "records", records, "group", group)
	start := time.Now()
	pr, err := proc.Start("projector-rebuild", p.cfg.LogDir, bin,
		"--brokers", strings.Join(p.cfg.Brokers, ","), "--topic", topic, "--group", group,
		"--redis-addr", p.cfg.RedisAddr, "--redis-prefix", prefix, "--metrics-addr", p.cfg.RebuildMetrics)
	if err != nil {
		return nil, err
	}
	defer pr.Stop(stopTimeout) //nolint:errcheck // best effort at the end
	var done time.Time
	for {
		behind, err := p.in.groupBehind(ctx, group, topic, ends)
		if err == nil && behind == 0 {
			done = time.Now()
			break
		}
		if exited, perr := pr.Exited(); exited {
			return nil, fmt.Errorf("rebuild projector exited: %v", perr)
		}
		if time.Since(start) > 5*time.Minute {
			return nil, errors.New("rebuild did not finish within 5 minutes")
		}
		time.Sleep(50 * time.Millisecond)
	}
	cpu, _ := pr.CPU()
	r := &report.Rebuild{
		Method:  "fresh projector, new consumer group and key prefix, from offset 0 to the end offsets at start",
		Records: records, Seconds: round2(done.Sub(start).Seconds()), SwitchSeconds: round2(done.Sub(start).Seconds()),
		RecordsPerS: round2(float64(records) / done.Sub(start).Seconds()), CPUSeconds: round2(cpu.Seconds()),
	}
	p.log.Info("rebuild done", "seconds", r.Seconds, "records_per_s", r.RecordsPerS)
	return r, nil
}
