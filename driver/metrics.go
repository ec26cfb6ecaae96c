package driver

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"golang.org/x/sys/unix"

	"github.com/csi-goferfs/csi-goferfs/cache"
	"github.com/csi-goferfs/csi-goferfs/datapath"
)

// The driver owns the node's Prometheus metrics. Two kinds feed them:
//
//   - FUSE operation counts and latencies are pushed by the data path on
//     every request (datapath.OpObserver). Their label children are
//     resolved once per volume at stage time, so a request costs two
//     atomic updates and no allocation.
//   - Everything else is read at scrape time from the staged volumes
//     (Stats, Check) and the page cache budget, so it costs the I/O path
//     nothing.
//
// A volume's series appear when it is staged and go when it is unstaged.

const metricsNamespace = "goferfs"

// latencyBuckets span a cached read (tens of microseconds) to a slow
// remote fsync (seconds).
var latencyBuckets = prometheus.ExponentialBuckets(10e-6, 4, 10)

// metrics is the Driver's registry and the collectors it owns.
type metrics struct {
	reg     *prometheus.Registry
	ops     *prometheus.CounterVec
	latency *prometheus.HistogramVec
}

func newMetrics(d *Driver) *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		ops: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: metricsNamespace, Subsystem: "fuse", Name: "operations_total",
			Help: "FUSE operations served, by volume and operation.",
		}, []string{"volume", "op"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: metricsNamespace, Subsystem: "fuse", Name: "operation_duration_seconds",
			Help:    "Time to serve a FUSE operation, from the request to the reply, by volume and operation.",
			Buckets: latencyBuckets,
		}, []string{"volume", "op"}),
	}
	m.reg.MustRegister(m.ops, m.latency, &volumeCollector{d: d},
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// observer returns the OpObserver of volume id, with its series resolved.
func (m *metrics) observer(id string) datapath.OpObserver {
	o := &opObserver{}
	for op := range datapath.Op(datapath.NumOps) {
		o.ops[op] = m.ops.WithLabelValues(id, op.String())
		o.latency[op] = m.latency.WithLabelValues(id, op.String())
	}
	return o
}

// forget drops the series that observer(id) made.
func (m *metrics) forget(id string) {
	m.ops.DeletePartialMatch(prometheus.Labels{"volume": id})
	m.latency.DeletePartialMatch(prometheus.Labels{"volume": id})
}

// opObserver counts and times one volume's FUSE operations.
type opObserver struct {
	ops     [datapath.NumOps]prometheus.Counter
	latency [datapath.NumOps]prometheus.Observer
}

func (o *opObserver) ObserveOp(op datapath.Op, d time.Duration) {
	o.ops[op].Inc()
	o.latency[op].Observe(d.Seconds())
}

// statser is a MountedVolume that counts its activity; the FUSE data path
// does, test fakes need not.
type statser interface {
	Stats() datapath.VolumeStats
}

// budgeter is a Mounter whose volumes share a page cache budget.
type budgeter interface {
	CacheBudget() *cache.Budget
}

// volumeCollector reads the staged volumes' state at scrape time.
type volumeCollector struct{ d *Driver }

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(metricsNamespace+"_"+name, help, labels, nil)
}

var (
	descUp = desc("volume_session_up",
		"1 while the volume's FUSE session is serving, 0 once it has ended.", "volume")
	descInfo = desc("volume_info",
		"Always 1: how the volume is staged.", "volume", "interop_mode", "force_page_cache")
	descHits = desc("cache_hits_total",
		"Reads served from the daemon's page cache without asking the remote.", "volume")
	descMisses = desc("cache_misses_total",
		"Reads through the daemon's page cache that had to ask the remote.", "volume")
	descFills = desc("cache_fills_total",
		"Remote reads that filled the page cache.", "volume")
	descFillBytes = desc("cache_fill_bytes_total",
		"Bytes read from the remote into the page cache.", "volume")
	descReadahead = desc("cache_readahead_bytes_total",
		"Bytes filled ahead of what reads asked for.", "volume")
	descCached = desc("cache_bytes",
		"Bytes of the volume in the page cache.", "volume")
	descDirty = desc("cache_dirty_bytes",
		"Bytes in the page cache not yet written to the remote.", "volume")
	descWriteback = desc("cache_writeback_bytes_total",
		"Dirty bytes written back to the remote.", "volume")
	descWritebackErrors = desc("cache_writeback_errors_total",
		"Writebacks that failed; their data stays dirty and is retried.", "volume")
	descEvictions = desc("cache_evictions_total",
		"Pages (4 KiB) evicted from the page cache to stay within the budget.", "volume")
	descRemoteErrors = desc("remote_errors_total",
		"FUSE operations that failed because the remote did, by errno.", "volume", "errno")
	descBudgetLimit = desc("cache_budget_limit_bytes",
		"The node's page cache budget, shared by all volumes.")
	descBudgetUsed = desc("cache_budget_used_bytes",
		"Bytes of the node's page cache budget in use.")
)

func (c *volumeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descUp, descInfo, descHits, descMisses, descFills,
		descFillBytes, descReadahead, descCached, descDirty, descWriteback, descWritebackErrors,
		descEvictions, descRemoteErrors, descBudgetLimit, descBudgetUsed} {
		ch <- d
	}
}

func (c *volumeCollector) Collect(ch chan<- prometheus.Metric) {
	d := c.d
	if b, ok := d.mounter.(budgeter); ok {
		s := b.CacheBudget().Stats()
		ch <- prometheus.MustNewConstMetric(descBudgetLimit, prometheus.GaugeValue, float64(s.Limit))
		ch <- prometheus.MustNewConstMetric(descBudgetUsed, prometheus.GaugeValue, float64(s.Used))
	}
	d.mu.Lock()
	vols := make([]*stagedVolume, 0, len(d.staged))
	for _, st := range d.staged {
		vols = append(vols, st)
	}
	d.mu.Unlock()
	// Outside d.mu: Stats takes the volume's cache locks.
	for _, st := range vols {
		collectVolume(ch, st)
	}
}

func collectVolume(ch chan<- prometheus.Metric, st *stagedVolume) {
	gauge := func(desc *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(desc, prometheus.GaugeValue, v, append([]string{st.id}, labels...)...)
	}
	counter := func(desc *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(desc, prometheus.CounterValue, float64(v), append([]string{st.id}, labels...)...)
	}
	up := 0.0
	if st.vol.Check() == nil {
		up = 1
	}
	gauge(descUp, up)
	gauge(descInfo, 1, string(st.params.Mode), strconv.FormatBool(st.params.ForcePageCache))
	s, ok := st.vol.(statser)
	if !ok {
		return
	}
	vs := s.Stats()
	counter(descHits, vs.Cache.Hits)
	counter(descMisses, vs.Cache.Misses)
	counter(descFills, vs.Cache.Fills)
	counter(descFillBytes, vs.Cache.FilledBytes)
	counter(descReadahead, vs.Cache.ReadaheadBytes)
	gauge(descCached, float64(vs.CachedBytes))
	gauge(descDirty, float64(vs.DirtyBytes))
	counter(descWriteback, vs.Cache.WritebackBytes)
	counter(descWritebackErrors, vs.Cache.WritebackErrors)
	counter(descEvictions, vs.Cache.Evictions)
	for _, e := range datapath.RemoteErrnos {
		counter(descRemoteErrors, vs.RemoteErrors[e], unix.ErrnoName(e))
	}
}
