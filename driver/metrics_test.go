package driver

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/container-storage-interface/spec/lib/go/csi"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// scrape fetches url over HTTP and parses the text exposition format.
func scrape(t *testing.T, url string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse %s: %v", url, err)
	}
	return fams
}

// series returns the metric of family name whose labels include want.
func series(fams map[string]*dto.MetricFamily, name string, want map[string]string) *dto.Metric {
	for _, m := range fams[name].GetMetric() {
		have := map[string]string{}
		for _, l := range m.GetLabel() {
			have[l.GetName()] = l.GetValue()
		}
		match := true
		for k, v := range want {
			match = match && have[k] == v
		}
		if match {
			return m
		}
	}
	return nil
}

// value returns the value of a counter or gauge series, or -1 if absent.
func value(fams map[string]*dto.MetricFamily, name string, labels map[string]string) float64 {
	m := series(fams, name, labels)
	switch {
	case m == nil:
		return -1
	case m.Counter != nil:
		return m.GetCounter().GetValue()
	default:
		return m.GetGauge().GetValue()
	}
}

// countVolumeSeries counts the series labelled volume=id in all families.
func countVolumeSeries(fams map[string]*dto.MetricFamily, id string) int {
	n := 0
	for name := range fams {
		for _, m := range fams[name].GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "volume" && l.GetValue() == id {
					n++
				}
			}
		}
	}
	return n
}

// A staged volume's FUSE operations, page cache and session show on
// /metrics while it is staged, and its series go when it is unstaged.
func TestRealMountMetricsPerVolume(t *testing.T) {
	e := newRealEnv(t)
	ns := e.driver(t)
	srv := httptest.NewServer(ns.d.metrics.handler())
	defer srv.Close()
	ctx := context.Background()
	vctx := map[string]string{ParamInteropMode: "writethrough", ParamForcePageCache: "true"}
	if _, err := ns.NodeStageVolume(ctx, stageReq("vol-1", e.staging, vctx)); err != nil {
		t.Fatal(err)
	}
	pub := publishReq("vol-1", e.staging, e.target, false)
	pub.VolumeContext = vctx
	if _, err := ns.NodePublishVolume(ctx, pub); err != nil {
		t.Fatal(err)
	}

	path := filepath.Join(e.target, "data")
	if err := os.WriteFile(path, make([]byte, 256<<10), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 256<<10)
	for range 2 { // cold, then from the cache
		if _, err := f.ReadAt(buf, 0); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := f.WriteAt([]byte("over cached pages"), 4096); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}

	fams := scrape(t, srv.URL+"/metrics")
	vol := map[string]string{"volume": "vol-1"}
	op := func(name string) map[string]string { return map[string]string{"volume": "vol-1", "op": name} }
	for _, o := range []string{"lookup", "create", "open", "read", "write", "fsync"} {
		if v := value(fams, "goferfs_fuse_operations_total", op(o)); v <= 0 {
			t.Errorf("goferfs_fuse_operations_total{op=%q} = %v, want > 0", o, v)
		}
	}
	reads := value(fams, "goferfs_fuse_operations_total", op("read"))
	if h := series(fams, "goferfs_fuse_operation_duration_seconds", op("read")); h == nil ||
		float64(h.GetHistogram().GetSampleCount()) != reads {
		t.Errorf("read latency histogram %v, want one sample per read (%v)", h, reads)
	}
	for name, wantPositive := range map[string]bool{
		"goferfs_cache_fills_total":            true,
		"goferfs_cache_fill_bytes_total":       true,
		"goferfs_cache_misses_total":           true,
		"goferfs_cache_hits_total":             true,
		"goferfs_cache_writeback_bytes_total":  true,
		"goferfs_cache_bytes":                  true,
		"goferfs_volume_session_up":            true,
		"goferfs_cache_dirty_bytes":            false,
		"goferfs_cache_writeback_errors_total": false,
		"goferfs_cache_evictions_total":        false,
	} {
		v := value(fams, name, vol)
		if wantPositive && v <= 0 || !wantPositive && v != 0 {
			t.Errorf("%s = %v, want %s", name, v, map[bool]string{true: "> 0", false: "0"}[wantPositive])
		}
	}
	if v := value(fams, "goferfs_remote_errors_total", map[string]string{"volume": "vol-1", "errno": "EIO"}); v != 0 {
		t.Errorf("remote EIO errors = %v, want a series at 0", v)
	}
	info := map[string]string{"volume": "vol-1", "interop_mode": "writethrough", "force_page_cache": "true"}
	if v := value(fams, "goferfs_volume_info", info); v != 1 {
		t.Errorf("goferfs_volume_info%v = %v, want 1", info, v)
	}
	if v := value(fams, "goferfs_cache_budget_limit_bytes", nil); v <= 0 {
		t.Errorf("goferfs_cache_budget_limit_bytes = %v, want > 0", v)
	}
	f.Close()

	if _, err := ns.NodeUnpublishVolume(ctx, &csi.NodeUnpublishVolumeRequest{VolumeId: "vol-1", TargetPath: e.target}); err != nil {
		t.Fatal(err)
	}
	if _, err := ns.NodeUnstageVolume(ctx, &csi.NodeUnstageVolumeRequest{VolumeId: "vol-1", StagingTargetPath: e.staging}); err != nil {
		t.Fatal(err)
	}
	if n := countVolumeSeries(scrape(t, srv.URL+"/metrics"), "vol-1"); n != 0 {
		t.Errorf("%d series of vol-1 left after unstage, want none", n)
	}
}

// freeAddr returns a loopback address with a port that was free a moment
// ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// Run serves /metrics on MetricsAddress while it serves CSI, with a
// series for each staged volume, and stops serving it when it stops.
func TestRunServesMetrics(t *testing.T) {
	e := newTestEnv(t)
	e.mkvol(t, "vol-1")
	addr := freeAddr(t)
	e.d.metricsAddr = addr
	sock := filepath.Join(e.dir, "csi.sock")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stopped := make(chan error, 1)
	go func() { stopped <- e.d.Run(ctx, "unix://"+sock) }()

	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// Run listens for metrics before CSI, so once staging answers, the
	// metrics server is up.
	_, err = csi.NewNodeClient(conn).NodeStageVolume(ctx, stageReq("vol-1", filepath.Join(e.dir, "staging"), nil), grpc.WaitForReady(true))
	if err != nil {
		t.Fatal(err)
	}
	fams := scrape(t, "http://"+addr+"/metrics")
	if v := value(fams, "goferfs_volume_session_up", map[string]string{"volume": "vol-1"}); v != 1 {
		t.Errorf("goferfs_volume_session_up of the staged volume = %v, want 1", v)
	}
	if _, ok := fams["go_goroutines"]; !ok {
		t.Error("no Go runtime metrics")
	}

	cancel()
	if err := <-stopped; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if resp, err := http.Get("http://" + addr + "/metrics"); err == nil {
		resp.Body.Close()
		t.Error("metrics still served after Run returned")
	}
}

func TestMetricsAddressIsChecked(t *testing.T) {
	for addr, ok := range map[string]bool{"": true, ":9810": true, "127.0.0.1:9810": true, "9810": false} {
		_, err := New(Config{NodeID: "n", Root: "/r", Services: Services{Node: true}, MetricsAddress: addr})
		if (err == nil) != ok {
			t.Errorf("MetricsAddress %q: %v", addr, err)
		}
	}
}
