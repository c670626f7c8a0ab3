package rebuild

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	records prometheus.Counter
	total   prometheus.Gauge
	rate    prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	const ns, sub = "stock", "projector"
	m := &metrics{
		records: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "rebuild_records_total", Help: "Records replayed by cache rebuilds."}),
		total: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub,
			Name: "rebuild_target_records", Help: "Records the running rebuild replays in all (0 when none runs)."}),
		rate: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub,
			Name: "rebuild_records_per_second", Help: "Replay rate of the running rebuild."}),
	}
	// A projector may rebuild more than once (at start, then after a loss
	// while running): later rebuilds count on the collectors of the first.
	var err error
	if m.records, err = register(reg, m.records); err != nil {
		return nil, err
	}
	if m.total, err = register(reg, m.total); err != nil {
		return nil, err
	}
	if m.rate, err = register(reg, m.rate); err != nil {
		return nil, err
	}
	return m, nil
}

// register registers c, or returns the equal collector registered before.
func register[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	err := reg.Register(c)
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if prev, ok := are.ExistingCollector.(C); ok {
			return prev, nil
		}
	}
	return c, err
}
