package main

import (
	"math"
	"testing"
)

func TestRatiosAgainstNative(t *testing.T) {
	samples := []sample{
		{"untar", "native", "s", 2}, {"untar", "native", "s", 4}, {"untar", "native", "s", 3},
		{"untar", "fuse", "s", 6}, {"untar", "fuse", "s", 9}, {"untar", "fuse", "s", 12},
		{"seqread", "native", "MB/s", 400}, {"seqread", "fuse", "MB/s", 300},
	}
	workloads, targets, r, err := ratios(samples)
	if err != nil {
		t.Fatal(err)
	}
	if len(workloads) != 2 || len(targets) != 2 {
		t.Fatalf("workloads %v, targets %v", workloads, targets)
	}
	// Times: native median / target median; rates: target / native.
	for i, want := range []float64{3.0 / 9, 300.0 / 400} {
		if got := r["fuse"][i]; math.Abs(got-want) > 1e-9 {
			t.Errorf("%s: ratio %v, want %v", workloads[i], got, want)
		}
		if got := r["native"][i]; got != 1 {
			t.Errorf("native ratio %v, want 1", got)
		}
	}
	if _, _, _, err := ratios([]sample{{"untar", "fuse", "s", 1}}); err == nil {
		t.Error("a workload without native accepted")
	}
}
