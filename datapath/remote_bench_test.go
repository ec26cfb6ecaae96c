package datapath

import (
	"archive/tar"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/csi-goferfs/csi-goferfs/backend/ninep/ninetest"
)

// BenchmarkNinepUntarRequests extracts a tar of small files with tar(1)
// onto a 9P volume in each caching mode and reports the 9P requests sent
// per entry, in total and by type: over a network every request is a round
// trip, so this is what an untar costs there.
func BenchmarkNinepUntarRequests(b *testing.B) {
	requireFUSE(b)
	if _, err := exec.LookPath("tar"); err != nil {
		b.Skip("needs tar(1)")
	}
	archive, entries := smallTree(b, 10, 20)
	for _, mode := range []Mode{Exclusive, WriteThrough} {
		b.Run(string(mode), func(b *testing.B) {
			srv := ninetest.Start(b, "gofer", b.TempDir())
			m := mountNinep(b, srv, Options{Mode: mode}, 0)
			reqs := m.fsys.Requests()
			before := reqs.Snapshot()
			b.ResetTimer()
			for i := range b.N {
				dest := filepath.Join(m.mnt, fmt.Sprint(i))
				if err := os.Mkdir(dest, 0o755); err != nil {
					b.Fatal(err)
				}
				cmd := exec.Command("tar", "-C", dest, "-xf", "-")
				cmd.Stdin = bytes.NewReader(archive)
				if out, err := cmd.CombinedOutput(); err != nil {
					b.Fatalf("tar: %v: %s", err, out)
				}
			}
			if err := m.vol.Sync(); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			after := reqs.Snapshot()
			var total uint64
			var parts []string
			for name, n := range after {
				d := n - before[name]
				total += d
				if d > 0 {
					parts = append(parts, fmt.Sprintf("%s=%.2f", name, float64(d)/float64(b.N*entries)))
				}
			}
			sort.Strings(parts)
			b.ReportMetric(float64(total)/float64(b.N*entries), "reqs/entry")
			b.Logf("requests per entry: %s", strings.Join(parts, " "))
		})
	}
}

// smallTree returns a tar of dirs directories of files 1 KiB files each,
// and its number of entries.
func smallTree(b *testing.B, dirs, files int) ([]byte, int) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	body := bytes.Repeat([]byte("x"), 1024)
	for d := range dirs {
		dir := fmt.Sprintf("d%d/", d)
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: dir, Mode: 0o755}); err != nil {
			b.Fatal(err)
		}
		for f := range files {
			hdr := &tar.Header{Typeflag: tar.TypeReg, Name: fmt.Sprintf("%sf%d", dir, f), Mode: 0o644, Size: int64(len(body))}
			if err := tw.WriteHeader(hdr); err != nil {
				b.Fatal(err)
			}
			tw.Write(body)
		}
	}
	if err := tw.Close(); err != nil {
		b.Fatal(err)
	}
	return buf.Bytes(), dirs * (files + 1)
}
