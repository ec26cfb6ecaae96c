package driver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"k8s.io/klog/v2"
)

// metricsShutdownTimeout bounds how long Run waits for scrapes in flight
// when it stops.
const metricsShutdownTimeout = 5 * time.Second

// handler serves the registry in the Prometheus exposition formats.
func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{ErrorLog: promLogger{}, Registry: m.reg})
}

// promLogger sends promhttp's errors to klog.
type promLogger struct{}

func (promLogger) Println(v ...any) { klog.ErrorS(nil, "Serving metrics: "+fmt.Sprint(v...)) }

// serveMetrics serves /metrics on MetricsAddress until stop is called. It
// fails open: if the address cannot be bound the error is logged and the
// driver runs without metrics, because a node plugin that exits leaves
// every volume on the node unserved, which is worse than going unseen.
func (d *Driver) serveMetrics() (stop func()) {
	if d.metricsAddr == "" {
		return func() {}
	}
	lis, err := net.Listen("tcp", d.metricsAddr)
	if err != nil {
		klog.ErrorS(err, "Cannot serve metrics; running without them", "address", d.metricsAddr)
		return func() {}
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", d.metrics.handler())
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(lis); !errors.Is(err, http.ErrServerClosed) {
			klog.ErrorS(err, "Metrics server stopped", "address", lis.Addr())
		}
	}()
	klog.InfoS("Serving metrics", "address", lis.Addr().String(), "path", "/metrics")
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), metricsShutdownTimeout)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			srv.Close()
		}
		<-done
	}
}
