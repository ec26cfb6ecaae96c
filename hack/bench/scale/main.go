// Command scale measures what staged volumes cost one node: it starts
// 'csi-goferfs serve' on a temporary root, stages N volumes for each N given
// (one FUSE session each), and reports the time of NodeStageVolume and the
// idle RSS and goroutines that each staged volume adds to the process.
//
// Usage (root, /dev/fuse): go run ./hack/bench/scale --binary bin/csi-goferfs -n 1,10,100
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

func main() {
	binary := flag.String("binary", "bin/csi-goferfs", "csi-goferfs binary to measure")
	counts := flag.String("n", "1,10,100", "comma-separated numbers of volumes to stage")
	mode := flag.String("interop", "exclusive", "interopMode of the volumes")
	settle := flag.Duration("settle", 3*time.Second, "idle time before each memory reading")
	flag.Parse()
	var ns []int
	for _, f := range strings.Split(*counts, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			fmt.Fprintf(os.Stderr, "scale: bad -n entry %q\n", f)
			os.Exit(2)
		}
		ns = append(ns, n)
	}
	if err := run(*binary, ns, *mode, *settle); err != nil {
		fmt.Fprintf(os.Stderr, "scale: %v\n", err)
		os.Exit(1)
	}
}

// server is one 'csi-goferfs serve' process and its clients.
type server struct {
	cmd     *exec.Cmd
	work    string
	metrics string
	ctrl    csi.ControllerClient
	node    csi.NodeClient
}

func run(binary string, ns []int, mode string, settle time.Duration) error {
	work, err := os.MkdirTemp("", "csi-goferfs-scale.")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	s, err := start(binary, work)
	if err != nil {
		return err
	}
	defer s.stop()

	fmt.Printf("Machine: %d CPUs, %s. Interop mode %s; idle readings after %s.\n\n", runtime.NumCPU(), kernel(), mode, settle)
	fmt.Println("| volumes | stage total | stage per volume (median) | RSS per volume | goroutines per volume |")
	fmt.Println("|---|---|---|---|---|")
	for _, n := range ns {
		time.Sleep(settle)
		rss0, err := rssBytes(s.cmd.Process.Pid)
		if err != nil {
			return err
		}
		g0, err := s.goroutines()
		if err != nil {
			return err
		}
		ids, times, err := s.stageMany(n, mode)
		if err != nil {
			return err
		}
		time.Sleep(settle)
		rss1, err := rssBytes(s.cmd.Process.Pid)
		if err != nil {
			return err
		}
		g1, err := s.goroutines()
		if err != nil {
			return err
		}
		var total time.Duration
		for _, t := range times {
			total += t
		}
		slices.Sort(times)
		fmt.Printf("| %d | %.2f s | %.1f ms | %.2f MiB | %.1f |\n", n, total.Seconds(),
			float64(times[len(times)/2].Microseconds())/1000,
			float64(rss1-rss0)/float64(n)/(1<<20), float64(g1-g0)/float64(n))
		if err := s.unstageAll(ids); err != nil {
			return err
		}
	}
	return nil
}

func start(binary, work string) (*server, error) {
	for _, d := range []string{"root", "state", "stage"} {
		if err := os.MkdirAll(filepath.Join(work, d), 0o755); err != nil {
			return nil, err
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	metrics := l.Addr().String()
	l.Close()
	sock := filepath.Join(work, "csi.sock")
	log, err := os.Create(filepath.Join(work, "serve.log"))
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(binary, "serve", "--endpoint", "unix://"+sock, "--node-id", "scale",
		"--root", filepath.Join(work, "root"), "--state-dir", filepath.Join(work, "state"),
		"--metrics-address", metrics, "--unmount-on-exit")
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	s := &server{cmd: cmd, work: work, metrics: metrics}
	for i := 0; ; i++ {
		if _, err := os.Stat(sock); err == nil {
			break
		}
		if i == 100 {
			s.stop()
			return nil, fmt.Errorf("serve did not listen on %s (log in %s)", sock, log.Name())
		}
		time.Sleep(100 * time.Millisecond)
	}
	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		s.stop()
		return nil, err
	}
	s.ctrl, s.node = csi.NewControllerClient(conn), csi.NewNodeClient(conn)
	return s, nil
}

func (s *server) stop() {
	s.cmd.Process.Signal(os.Interrupt)
	done := make(chan struct{})
	go func() { s.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		s.cmd.Process.Kill()
		<-done
	}
}

var capability = &csi.VolumeCapability{
	AccessType: &csi.VolumeCapability_Mount{Mount: &csi.VolumeCapability_MountVolume{}},
	AccessMode: &csi.VolumeCapability_AccessMode{Mode: csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER},
}

// stageMany creates and stages n volumes one after another, the way a
// kubelet brings up pods, and returns their IDs and stage times.
func (s *server) stageMany(n int, mode string) ([]string, []time.Duration, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	var ids []string
	var times []time.Duration
	for i := range n {
		created, err := s.ctrl.CreateVolume(ctx, &csi.CreateVolumeRequest{
			Name:               fmt.Sprintf("scale-%d-%d", n, i),
			VolumeCapabilities: []*csi.VolumeCapability{capability},
			Parameters:         map[string]string{"interopMode": mode},
		})
		if err != nil {
			return ids, times, err
		}
		vol := created.GetVolume()
		ids = append(ids, vol.GetVolumeId())
		t0 := time.Now()
		_, err = s.node.NodeStageVolume(ctx, &csi.NodeStageVolumeRequest{
			VolumeId: vol.GetVolumeId(), StagingTargetPath: s.staging(vol.GetVolumeId()),
			VolumeCapability: capability, VolumeContext: vol.GetVolumeContext(),
		})
		if err != nil {
			return ids, times, fmt.Errorf("NodeStageVolume %d of %d: %w", i+1, n, err)
		}
		times = append(times, time.Since(t0))
	}
	return ids, times, nil
}

func (s *server) staging(id string) string { return filepath.Join(s.work, "stage", id) }

func (s *server) unstageAll(ids []string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	for _, id := range ids {
		if _, err := s.node.NodeUnstageVolume(ctx, &csi.NodeUnstageVolumeRequest{VolumeId: id, StagingTargetPath: s.staging(id)}); err != nil {
			return err
		}
		if _, err := s.ctrl.DeleteVolume(ctx, &csi.DeleteVolumeRequest{VolumeId: id}); err != nil {
			return err
		}
	}
	return nil
}

// goroutines reads go_goroutines from the server's /metrics.
func (s *server) goroutines() (int, error) {
	resp, err := http.Get("http://" + s.metrics + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "go_goroutines "); ok {
			f, err := strconv.ParseFloat(v, 64)
			return int(f), err
		}
	}
	io.Copy(io.Discard, resp.Body)
	return 0, fmt.Errorf("no go_goroutines in %s/metrics", s.metrics)
}

// rssBytes reads a process's resident set size from /proc.
func rssBytes(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("no VmRSS for pid %d", pid)
}

func kernel() string {
	b, err := os.ReadFile("/proc/sys/kernel/osrelease")
	if err != nil {
		return "kernel unknown"
	}
	return "kernel " + strings.TrimSpace(string(b))
}
