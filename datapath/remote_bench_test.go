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
			untarred := reqs.Snapshot()
			deferred := m.fsys.DeferredSent()
			if err := m.vol.Sync(); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			synced := reqs.Snapshot()
			per := float64(b.N * entries)
			fg, fgParts := requestsBetween(before, untarred, per)
			total, parts := requestsBetween(before, synced, per)
			// The requests tar waits for are the ones sent before the
			// sync, but for the changes sent in the background; the
			// rest are written back at the sync.
			b.ReportMetric(fg, "tar-reqs/entry")
			b.ReportMetric(fg-float64(deferred)/per, "waited-reqs/entry")
			b.ReportMetric(total, "reqs/entry")
			b.Logf("requests per entry while tar runs: %s", strings.Join(fgParts, " "))
			b.Logf("requests per entry in all: %s", strings.Join(parts, " "))
		})
	}
}

// requestsBetween returns the requests sent between two snapshots per
// entry, in all and by type.
func requestsBetween(before, after map[string]uint64, entries float64) (float64, []string) {
	var total uint64
	var parts []string
	for name, n := range after {
		d := n - before[name]
		total += d
		if d > 0 {
			parts = append(parts, fmt.Sprintf("%s=%.2f", name, float64(d)/entries))
		}
	}
	sort.Strings(parts)
	return float64(total) / entries, parts
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
