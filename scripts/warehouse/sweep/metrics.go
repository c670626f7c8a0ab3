package sweep

import "github.com/prometheus/client_golang/prometheus"

// metrics of the sweeper, prefix stock_sweeper_.
type metrics struct {
	expired     prometheus.Counter
	sweeps      prometheus.Counter
	errors      prometheus.Counter
	rate        prometheus.Gauge
	overdue     prometheus.Gauge
	oldest      prometheus.Gauge
	lastSuccess prometheus.Gauge
	duration    prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	const ns, sub = "stock", "sweeper"
	gauge := func(name, help string) prometheus.Gauge {
		return prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: name, Help: help})
	}
	counter := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: name, Help: help})
	}
	m := &metrics{
		expired: counter("reservations_expired_total", "Reservations expired by stock_expire (their stock given back)."),
		sweeps:  counter("sweeps_total", "Sweeps that ended without error (each drains what is due, Limit reservations per call)."),
		errors:  counter("errors_total", "Failed stock_expire calls or overdue reads (each sweep is retried at the next interval)."),
		rate:    gauge("expired_per_second", "Reservations expired per second between the last two sweeps (rate() of reservations_expired_total is the same over a window)."),
		overdue: gauge("overdue_reservations", "Active reservations past their expiry after the last sweep (locked by a concurrent release or commit, or left behind)."),
		oldest: gauge("oldest_overdue_seconds", "How long ago the oldest active overdue reservation was due, after the last sweep (0: none). Growing means the sweep falls behind: "+
			"expired stock stays reserved and unsellable."),
		lastSuccess: gauge("last_success_timestamp_seconds", "Unix time of the last sweep that ended without error."),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Subsystem: sub, Name: "sweep_duration_seconds",
			Help:    "Time of one sweep (every stock_expire call until none comes back full).",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 14), // 1ms .. 8s
		}),
	}
	for _, c := range []prometheus.Collector{m.expired, m.sweeps, m.errors, m.rate, m.overdue, m.oldest, m.lastSuccess, m.duration} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}
