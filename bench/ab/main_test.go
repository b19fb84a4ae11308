package main

import (
	"math/rand/v2"
	"slices"
	"testing"
)

func TestParseRounds(t *testing.T) {
	out := `round 1: GetImage 500x500           xvmview           764.0/s  transport CPU 0.42 cores, 552.1 µs/op
round 1: GetProperty (round trip)   xvmview          9010.0/s  transport CPU 0.36 cores, 40.0 µs/op
round 1: PutImage 500x500           ssh -X            500.0/s  transport CPU 0.49 cores, 987.6 µs/op
round 2: GetImage 500x500           xvmview           720.0/s  transport CPU 0.42 cores, 560.0 µs/op
x11perf on guest 10.213.1.2 against Xephyr :1 (via Xvfb)
`
	got := parseRounds(out)
	if want := []float64{764, 720}; !slices.Equal(got["GetImage 500x500"], want) {
		t.Errorf("GetImage = %v, want %v", got["GetImage 500x500"], want)
	}
	if want := []float64{9010}; !slices.Equal(got["GetProperty (round trip)"], want) {
		t.Errorf("GetProperty = %v, want %v", got["GetProperty (round trip)"], want)
	}
	if len(got) != 2 {
		t.Errorf("tests %v, want only xvmview's two", got)
	}
}

func TestCompare(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	noisy := func(m float64) []float64 {
		x := make([]float64, 40)
		for i := range x {
			x[i] = m * (1 + 0.07*rng.NormFloat64())
		}
		return x
	}
	same := compare(noisy(900), noisy(900), rng)
	if same.lo > 1 || same.hi < 1 {
		t.Errorf("equal sides: interval %.3f..%.3f misses 1", same.lo, same.hi)
	}
	lost := compare(noisy(900), noisy(800), rng)
	if lost.hi >= 0.95 || lost.ratio > 0.93 || lost.ratio < 0.85 {
		t.Errorf("an 11%% loss: ratio %.3f, interval %.3f..%.3f", lost.ratio, lost.lo, lost.hi)
	}
	if m := median([]float64{3, 1, 2, 10}); m != 2.5 {
		t.Errorf("median = %v, want 2.5", m)
	}
}
