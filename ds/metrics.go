package ds

import (
	"net/http"
	"time"

	"connectrpc.com/connect"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics are the Server's Prometheus metrics, in a registry of its own
// (several Servers in one process, as in tests, do not collide).
type metrics struct {
	reg       *prometheus.Registry
	requests  *prometheus.CounterVec   // rpc, code
	latency   *prometheus.HistogramVec // rpc
	messages  *prometheus.CounterVec   // kind
	groups    prometheus.Counter
	conflicts prometheus.Counter
	streams   prometheus.Gauge
	giChecks  *prometheus.CounterVec // path
}

func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mlsd_requests_total", Help: "RPCs handled, by RPC and Connect code (ok for success).",
		}, []string{"rpc", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "mlsd_request_duration_seconds", Help: "RPC handling time (for Subscribe, the stream's lifetime).",
			Buckets: prometheus.ExponentialBuckets(0.0002, 2, 16),
		}, []string{"rpc"}),
		messages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mlsd_messages_total", Help: "Messages accepted into group logs and mailboxes, by kind.",
		}, []string{"kind"}),
		groups: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "mlsd_groups_created_total", Help: "Groups registered with CreateGroup.",
		}),
		conflicts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "mlsd_commit_conflicts_total", Help: "Commits refused because another commit won their epoch.",
		}),
		streams: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "mlsd_subscriptions", Help: "Open Subscribe streams.",
		}),
		giChecks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mlsd_groupinfo_checks_total",
			Help: "GroupInfos posted with public commits, by how they were checked: direct (the server's own tree, GroupContext and signature compared) or rebuild (followed from scratch).",
		}, []string{"path"}),
	}
	m.reg.MustRegister(m.requests, m.latency, m.messages, m.groups, m.conflicts, m.streams, m.giChecks,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// observe records one RPC.
func (m *metrics) observe(rpc string, err error, d time.Duration) {
	code := "ok"
	if err != nil {
		code = connect.CodeOf(err).String()
	}
	m.requests.WithLabelValues(rpc, code).Inc()
	m.latency.WithLabelValues(rpc).Observe(d.Seconds())
}

func (m *metrics) message(k Kind) {
	m.messages.WithLabelValues(kindName(k)).Inc()
}

func kindName(k Kind) string {
	switch k {
	case KindCommit:
		return "commit"
	case KindProposal:
		return "proposal"
	case KindApplication:
		return "application"
	}
	return "unknown"
}
