package ninep_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/csi-goferfs/csi-goferfs/backend"
	"github.com/csi-goferfs/csi-goferfs/backend/ninep"
	"github.com/csi-goferfs/csi-goferfs/backend/ninep/ninetest"
	"golang.org/x/sys/unix"
)

// BenchmarkParallelRead compares one connection shared by concurrent
// readers (the client multiplexes tags) with one connection per reader
// (what a pool would give), for 8 readers of 256 KiB blocks.
func BenchmarkParallelRead(b *testing.B) {
	const fileSize, block, readers = 64 << 20, 256 << 10, 8
	for _, kind := range ninetest.Kinds {
		for _, conns := range []int{1, 2, 4} {
			b.Run(fmt.Sprintf("%s/conns=%d", kind, conns), func(b *testing.B) {
				dir := b.TempDir()
				if err := os.WriteFile(filepath.Join(dir, "f"), make([]byte, fileSize), 0o644); err != nil {
					b.Fatal(err)
				}
				srv := ninetest.Start(b, kind, dir)
				files := make([]backend.File, conns)
				for i := range files {
					fsys, err := ninep.Dial(context.Background(), srv.Config)
					if err != nil {
						b.Fatal(err)
					}
					defer fsys.Close()
					f, err := fsys.Open("f", unix.O_RDONLY, 0)
					if err != nil {
						b.Fatal(err)
					}
					defer f.Close()
					files[i] = f
				}
				var next atomic.Int64
				b.SetBytes(block)
				b.SetParallelism(readers)
				b.ResetTimer()
				b.RunParallel(func(pb *testing.PB) {
					f := files[int(next.Add(1))%conns]
					buf := make([]byte, block)
					var off int64
					for pb.Next() {
						if _, err := f.ReadAt(buf, off); err != nil {
							b.Error(err)
							return
						}
						off = (off + block) % fileSize
					}
				})
			})
		}
	}
}
