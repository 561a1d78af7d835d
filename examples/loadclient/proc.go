package main

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// clockTicks is USER_HZ, the unit of /proc/<pid>/stat times: 100 on every
// Linux architecture Go supports.
const clockTicks = 100

// procCPU returns the CPU time of process pid, user plus system over all
// its threads, in seconds (/proc/<pid>/stat fields 14 and 15).
func procCPU(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) may hold spaces; fields are counted from
	// the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: no command name", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: too few fields", pid)
	}
	utime, err1 := strconv.ParseUint(f[11], 10, 64)
	stime, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: bad utime or stime", pid)
	}
	return float64(utime+stime) / clockTicks, nil
}

// procRSS returns the resident set size of process pid in KiB (VmRSS in
// /proc/<pid>/status).
func procRSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			return strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		}
	}
	return 0, fmt.Errorf("/proc/%d/status: no VmRSS", pid)
}

// ownCPU returns this process's user plus system CPU time in seconds.
func ownCPU() float64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

// machineCPU returns busy and total jiffies of all cores (/proc/stat).
func machineCPU() (busy, total float64) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	for i, v := range strings.Fields(line)[1:] {
		x, _ := strconv.ParseFloat(v, 64)
		total += x
		if i != 3 && i != 4 { // idle, iowait
			busy += x
		}
	}
	return busy, total
}

// cpuWindow measures CPU use over a measured interval: the server's (when
// its pid is known), the load client's own, and the whole machine's.
type cpuWindow struct {
	pid         int
	t0          time.Time
	srv0, own0  float64
	busy0, tot0 float64
}

func startCPU(pid int) *cpuWindow {
	w := &cpuWindow{pid: pid, t0: time.Now(), own0: ownCPU()}
	if pid > 0 {
		w.srv0, _ = procCPU(pid)
	}
	w.busy0, w.tot0 = machineCPU()
	return w
}

// CPU is the CPU part of every result line.
type CPU struct {
	// Window is the measured wall time in seconds.
	Window float64 `json:"window_s"`
	// ServerCPU is the server's utime+stime over the window in seconds,
	// ServerUtil the same per wall second (1.0 is one core). Both are
	// absent without -pid or -pidfile.
	ServerCPU  *float64 `json:"server_cpu_s,omitempty"`
	ServerUtil *float64 `json:"server_cpu_util,omitempty"`
	// ClientCPU is the load client's own CPU time over the window.
	ClientCPU float64 `json:"harness_cpu_s"`
	// MachineBusy is the busy fraction of all cores over the window.
	MachineBusy float64 `json:"machine_busy"`

	wall float64 // Window unrounded
}

// stop ends the window. It fails only when the server's pid has gone.
func (w *cpuWindow) stop() (CPU, error) {
	wall := time.Since(w.t0).Seconds()
	c := CPU{Window: round3(wall), ClientCPU: round3(ownCPU() - w.own0), wall: wall}
	if busy, tot := machineCPU(); tot > w.tot0 {
		c.MachineBusy = round3((busy - w.busy0) / (tot - w.tot0))
	}
	if w.pid > 0 {
		s, err := procCPU(w.pid)
		if err != nil {
			return c, fmt.Errorf("server pid %d: %w", w.pid, err)
		}
		srv, util := round3(s-w.srv0), round3((s-w.srv0)/wall)
		c.ServerCPU, c.ServerUtil = &srv, &util
	}
	return c, nil
}

// perSecond returns n per second of the window.
func (c CPU) perSecond(n float64) float64 {
	if c.wall <= 0 {
		return 0
	}
	return round1(n / c.wall)
}

// perServerCPU returns n per server CPU second, or nil when the server's
// CPU time is unknown or zero.
func (c CPU) perServerCPU(n float64) *float64 {
	if c.ServerCPU == nil || *c.ServerCPU <= 0 {
		return nil
	}
	v := round1(n / *c.ServerCPU)
	return &v
}
