package xephyr

import (
	"context"
	"testing"
	"time"

	"github.com/xvmview/xvmview/internal/testguest"
)

// BenchmarkStartDialClose measures one nested display's life: Start until
// -displayfd readiness, Dial with the cookie, CheckRefusesCookieless, Close
// (SIGTERM until exit). The phases are reported as custom metrics.
func BenchmarkStartDialClose(b *testing.B) {
	host := startXvfb(b, "800x600x24", true)
	testguest.NeedProgram(b, "Xephyr", "xserver-xephyr")
	var startNS, dialNS, checkNS, closeNS time.Duration
	for b.Loop() {
		c := newCookie(b)
		o := Options{AuthFile: writeAuth(b, "auth", wildEntry(c)), Env: host.Env()}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		t0 := time.Now()
		s, err := Start(ctx, o)
		if err != nil {
			cancel()
			b.Fatal(err)
		}
		t1 := time.Now()
		conn, err := Dial(ctx, s.Display, c)
		if err != nil {
			cancel()
			_ = s.Close()
			b.Fatal(err)
		}
		t2 := time.Now()
		if err := CheckRefusesCookieless(ctx, s.Display); err != nil {
			b.Error(err)
		}
		t3 := time.Now()
		err = s.Close()
		t4 := time.Now()
		conn.Close()
		cancel()
		if err != nil {
			b.Fatal(err)
		}
		startNS += t1.Sub(t0)
		dialNS += t2.Sub(t1)
		checkNS += t3.Sub(t2)
		closeNS += t4.Sub(t3)
	}
	n := float64(b.N)
	b.ReportMetric(float64(startNS.Milliseconds())/n, "start-ms/op")
	b.ReportMetric(float64(dialNS.Microseconds())/n, "dial-µs/op")
	b.ReportMetric(float64(checkNS.Microseconds())/n, "check-µs/op")
	b.ReportMetric(float64(closeNS.Milliseconds())/n, "close-ms/op")
}
