// Command benchchart draws the results of hack/bench/bench.sh as a PNG:
// one group of bars per workload, one bar per target, each bar the
// target's speed relative to native ext4 (1.0 = native) from the medians
// of one run.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"image/color"
	"log"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

func main() {
	in := flag.String("in", "", "results TSV of bench.sh (workload, target, 'value unit')")
	out := flag.String("out", "bench.png", "PNG to write")
	flag.Parse()
	if err := run(*in, *out); err != nil {
		log.Fatal(err)
	}
}

// sample is one measurement.
type sample struct {
	workload, target, unit string
	value                  float64
}

func readSamples(path string) ([]sample, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []sample
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		cols := strings.Split(sc.Text(), "\t")
		if len(cols) != 3 {
			return nil, fmt.Errorf("%s: bad line %q", path, sc.Text())
		}
		vu := strings.Fields(cols[2])
		if len(vu) != 2 {
			return nil, fmt.Errorf("%s: bad value %q", path, cols[2])
		}
		v, err := strconv.ParseFloat(vu[0], 64)
		if err != nil {
			return nil, err
		}
		out = append(out, sample{cols[0], cols[1], vu[1], v})
	}
	return out, sc.Err()
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	sort.Float64s(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// ratios returns, per target, the speed relative to native per workload,
// in the order workloads and targets first appear.
func ratios(samples []sample) (workloads, targets []string, r map[string][]float64, err error) {
	vals := map[[2]string][]float64{}
	unit := map[string]string{}
	for _, s := range samples {
		if !slices.Contains(workloads, s.workload) {
			workloads = append(workloads, s.workload)
		}
		if !slices.Contains(targets, s.target) {
			targets = append(targets, s.target)
		}
		k := [2]string{s.workload, s.target}
		vals[k] = append(vals[k], s.value)
		unit[s.workload] = s.unit
	}
	r = map[string][]float64{}
	for _, t := range targets {
		for _, w := range workloads {
			base, m := vals[[2]string{w, "native"}], vals[[2]string{w, t}]
			if len(base) == 0 || len(m) == 0 {
				return nil, nil, nil, fmt.Errorf("workload %s lacks native or %s", w, t)
			}
			ratio := median(m) / median(base)
			if unit[w] == "s" { // a time: less is faster
				ratio = median(base) / median(m)
			}
			r[t] = append(r[t], ratio)
		}
	}
	return workloads, targets, r, nil
}

func run(in, out string) error {
	samples, err := readSamples(in)
	if err != nil {
		return err
	}
	workloads, targets, r, err := ratios(samples)
	if err != nil {
		return err
	}
	p := plot.New()
	p.Title.Text = "Speed relative to native ext4 (1.0 = native, higher is faster)"
	p.Y.Label.Text = "x native"
	w := vg.Points(6)
	for i, t := range targets {
		bars, err := plotter.NewBarChart(plotter.Values(r[t]), w)
		if err != nil {
			return err
		}
		bars.LineStyle.Width = 0
		bars.Color = plotutil.Color(i)
		if t == "native" {
			bars.Color = color.Gray{Y: 100}
		}
		bars.Offset = w * vg.Length(float64(i)-float64(len(targets)-1)/2)
		p.Add(bars)
		p.Legend.Add(t, bars)
	}
	p.Legend.Top = true
	p.NominalX(workloads...)
	p.Add(plotter.NewGrid())
	width := vg.Length(len(workloads))*vg.Points(float64(len(targets))*6+24) + vg.Inch
	return p.Save(max(width, 9*vg.Inch), 5*vg.Inch, out)
}
