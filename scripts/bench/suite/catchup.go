package suite

// The catch-up phase: a backlog built in the slot while the producer is
// paused, then drained.

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/stockpipe/stock/schemas"
	"github.com/stockpipe/stock/scripts/bench/proc"
	"github.com/stockpipe/stock/scripts/bench/report"
)

// catchup pauses the producer, builds a backlog in its slot, resumes it and
// times the drain to Kafka and on to Redis.
func (p *pipeline) catchup(ctx context.Context) (*report.Catchup, error) {
	st := Step{Name: "catchup", Rate: p.cfg.BacklogRate, TxMaxCalls: p.cfg.MaxTxMaxCalls, Duration: p.cfg.Backlog}
	p.log.Info("catch-up: pausing the producer and building a backlog", "rate", st.Rate, "duration", st.Duration.String())
	sim, err := p.simulator(st, nil)
	if err != nil {
		return nil, err
	}
	m0, err := proc.Scrape(ctx, "http://"+p.cfg.ProducerMetrics+"/metrics", producerCounters...)
	if err != nil {
		return nil, err
	}
	ch0 := int64(m0[metricChangesRead])
	if err := p.producer.Pause(); err != nil {
		return nil, fmt.Errorf("pausing producer: %w", err)
	}
	from := time.Now()
	win := p.watch.Open(st.Name, from)
	if err := sim.Run(ctx); err != nil {
		_ = p.producer.Resume()
		return nil, fmt.Errorf("building backlog: %w", err)
	}
	win.Close(time.Now())
	c := &report.Catchup{BacklogSeconds: round2(time.Since(from).Seconds())}

	trackCtx, stopTrack := context.WithCancel(ctx)
	var wg sync.WaitGroup
	track := trackCPU(trackCtx, &wg, p.producer, p.projector)
	defer wg.Wait()
	defer stopTrack()
	resumed := time.Now()
	if err := p.producer.Resume(); err != nil {
		return nil, fmt.Errorf("resuming producer: %w", err)
	}
	// To Kafka: until the window's records stop coming.
	for {
		n, _, last := win.Counts()
		if n > 0 && time.Since(last) > 1500*time.Millisecond {
			break
		}
		if time.Since(resumed) > 3*time.Minute {
			return nil, errors.New("catch-up: the backlog did not drain within 3 minutes")
		}
		time.Sleep(50 * time.Millisecond)
	}
	n, _, kafkaDone := win.Counts()
	e2eDone, err := p.in.waitGroupCaughtUp(ctx, p.n.group, p.topic(schemas.TopicLevels), 3*time.Minute)
	if err != nil {
		return nil, err
	}
	m1, err := proc.Scrape(ctx, "http://"+p.cfg.ProducerMetrics+"/metrics", producerCounters...)
	if err != nil {
		return nil, err
	}
	c.Changes = int64(m1[metricChangesRead]) - ch0
	c.Producer = producerInside(m0, m1, kafkaDone.Sub(resumed).Seconds())
	if n != c.Changes {
		p.log.Warn("catch-up: change records read differ from changes the producer read", "records", n, "changes", c.Changes)
	}
	c.KafkaSeconds = round2(kafkaDone.Sub(resumed).Seconds())
	c.KafkaPerS = round2(float64(n) / kafkaDone.Sub(resumed).Seconds())
	c.E2ESeconds = round2(e2eDone.Sub(resumed).Seconds())
	c.E2EPerS = round2(float64(c.Changes) / e2eDone.Sub(resumed).Seconds())
	before := map[string]time.Duration{"producer": track.at("producer", resumed), "projector": track.at("projector", resumed)}
	after := map[string]time.Duration{"producer": track.at("producer", kafkaDone), "projector": track.at("projector", e2eDone)}
	c.CPUSeconds, c.CPUPerMillion = cpuFigures(before, after, c.Changes)
	p.log.Info("catch-up done", "changes", c.Changes, "to_kafka_per_s", c.KafkaPerS, "end_to_end_per_s", c.E2EPerS,
		"cpu_per_million", c.CPUPerMillion)
	time.Sleep(2 * time.Second)
	return c, nil
}
