package server_test

import (
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/kiez-im/kiez/server/servertest"
)

// cpuTime is the process's user and system CPU time so far.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkS2SMessages sends messages from alice@a.test to bob@b.test
// over one s2s stream (SASL EXTERNAL), both servers and both clients in
// this process: msgs/cpu-s is per CPU-second of the whole process (two
// servers, two clients), so each server's own cost is lower.
func BenchmarkS2SMessages(b *testing.B) {
	a, bs := federate(b, fedOptions{}, fedOptions{})
	_, bob, ca, cb := fedUsers(b, a, bs)
	// The stream is up before the clock starts.
	ca.Send(message(bob, "warm", "warm"))
	cb.Expect(servertest.Body("warm"))
	b.ResetTimer()
	cpu := cpuTime(b)
	for i := range b.N {
		body := "last"
		if i < b.N-1 {
			body = "m"
		}
		ca.Send(message(bob, "", body))
	}
	cb.Expect(servertest.Body("last"))
	b.StopTimer()
	if used := cpuTime(b) - cpu; used > 0 {
		b.ReportMetric(float64(b.N)/used.Seconds(), "msgs/cpu-s")
	}
}

// BenchmarkS2SLatency measures one message's trip from alice@a.test's
// client to bob@b.test's over an established s2s stream, one at a time:
// p50 and p99 in microseconds.
func BenchmarkS2SLatency(b *testing.B) {
	a, bs := federate(b, fedOptions{}, fedOptions{})
	_, bob, ca, cb := fedUsers(b, a, bs)
	ca.Send(message(bob, "warm", "warm"))
	cb.Expect(servertest.Body("warm"))
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		ca.Send(message(bob, "", "ping"))
		cb.Expect(servertest.Body("ping"))
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
}
