//go:build linux && (amd64 || arm64)

package cuda

import (
	"fmt"
	"io"
	"os"
	"sort"
	"text/tabwriter"
)

// ProfileEnv, when set (UPG_CUDA_PROFILE=1), times every kernel launch with
// a pair of events and, when the backend closes, writes a table of the
// kernels' GPU time per step size to stderr. Step graphs are not captured
// while it is on (a graph's launches cannot be timed one by one), so the
// "span" column — first kernel start to last kernel end per step — shows
// what launch gaps cost without graphs, and the kernel sum what the GPU
// itself spends.
const ProfileEnv = "UPG_CUDA_PROFILE"

// profiler collects the launches of one device (owner thread only).
type profiler struct {
	tag     string // the current step's label ("1 tok", "32 tok")
	pending []profLaunch
	free    []uintptr // recycled events
	kernels map[profKey]*profStat
	steps   map[string]*profStep
	err     error
}

type profLaunch struct {
	name       string
	start, end uintptr
}

type profKey struct{ tag, name string }

type profStat struct {
	calls int
	ms    float64
}

type profStep struct {
	flushes  int
	spanMs   float64 // first start to last end, summed over flushes
	kernelMs float64
}

func newProfiler() *profiler {
	return &profiler{kernels: map[profKey]*profStat{}, steps: map[string]*profStep{}}
}

func (p *profiler) event(d *Device) uintptr {
	if n := len(p.free); n > 0 {
		e := p.free[n-1]
		p.free = p.free[:n-1]
		return e
	}
	e, err := d.eventCreate()
	if err != nil && p.err == nil {
		p.err = err
	}
	return e
}

// around records events before and after launch (owner thread).
func (p *profiler) around(d *Device, name string, launch func() error) error {
	s, e := p.event(d), p.event(d)
	if s == 0 || e == 0 {
		return launch()
	}
	_ = d.eventRecord(s)
	err := launch()
	_ = d.eventRecord(e)
	p.pending = append(p.pending, profLaunch{name, s, e})
	return err
}

// collect waits for the pending launches and adds their times (owner
// thread, after a step's work is enqueued).
func (p *profiler) collect(d *Device) {
	if len(p.pending) == 0 {
		return
	}
	st := p.steps[p.tag]
	if st == nil {
		st = &profStep{}
		p.steps[p.tag] = st
	}
	first, last := p.pending[0], p.pending[len(p.pending)-1]
	if span, err := d.eventElapsed(first.start, last.end); err == nil {
		st.flushes++
		st.spanMs += float64(span)
	}
	for _, l := range p.pending {
		ms, err := d.eventElapsed(l.start, l.end)
		if err != nil {
			if p.err == nil {
				p.err = err
			}
			continue
		}
		k := profKey{p.tag, l.name}
		s := p.kernels[k]
		if s == nil {
			s = &profStat{}
			p.kernels[k] = s
		}
		s.calls++
		s.ms += float64(ms)
		st.kernelMs += float64(ms)
		p.free = append(p.free, l.start, l.end)
	}
	p.pending = p.pending[:0]
}

// report writes the table: per step size, the steps' span and kernel sum,
// then each kernel's calls, total and mean time and share.
func (p *profiler) report(w io.Writer) {
	tags := make([]string, 0, len(p.steps))
	for t := range p.steps {
		tags = append(tags, t)
	}
	sort.Strings(tags)
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(w, "cuda kernel profile (%s=1; graphs off)\n", ProfileEnv)
	for _, tag := range tags {
		st := p.steps[tag]
		fmt.Fprintf(tw, "step %s\tflushes %d\tspan %.3f ms/flush\tkernels %.3f ms/flush\t\n", tag, st.flushes,
			st.spanMs/float64(max(1, st.flushes)), st.kernelMs/float64(max(1, st.flushes)))
		type row struct {
			name string
			s    *profStat
		}
		var rows []row
		for k, s := range p.kernels {
			if k.tag == tag {
				rows = append(rows, row{k.name, s})
			}
		}
		sort.Slice(rows, func(i, j int) bool { return rows[i].s.ms > rows[j].s.ms })
		for _, r := range rows {
			fmt.Fprintf(tw, "  %s\t%d calls\t%.3f ms\t%.2f µs/call\t%.1f%%\t\n", r.name, r.s.calls, r.s.ms,
				1000*r.s.ms/float64(r.s.calls), 100*r.s.ms/max(st.kernelMs, 1e-9))
		}
	}
	tw.Flush()
	if p.err != nil {
		fmt.Fprintf(w, "cuda kernel profile: %v\n", p.err)
	}
}

// profiling reports whether ProfileEnv asks for the kernel profile.
func profiling() bool { v := os.Getenv(ProfileEnv); return v != "" && v != "0" }
