package bench

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// Figure is one number a run measured.
type Figure struct {
	// Name says what was measured.
	Name string
	// Unit is the unit of Value: "ms", "jobs/s", "MiB" or "bytes".
	Unit  string
	Value float64
}

// ms returns d in milliseconds.
func ms(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e6 }

// Figures returns the figures of r: its throughput, or its p50 and p99 in
// milliseconds.
func (r Result) Figures() []Figure {
	if r.PerSec > 0 {
		f := []Figure{{Name: r.Name, Unit: "jobs/s", Value: r.PerSec}}
		if r.Commits > 0 && r.N > 0 {
			f = append(f, Figure{Name: r.Name + ": commits per job", Unit: "commits", Value: float64(r.Commits) / float64(r.N)})
		}
		return f
	}
	return []Figure{
		{Name: r.Name + " p50", Unit: "ms", Value: ms(r.P50)},
		{Name: r.Name + " p99", Unit: "ms", Value: ms(r.P99)},
	}
}

// Figures returns the sizes of c in bytes.
func (c ContextSize) Figures() []Figure {
	return []Figure{
		{Name: "tools/list size", Unit: "bytes", Value: float64(c.ToolsList)},
		{Name: "initialize instructions size", Unit: "bytes", Value: float64(c.Instructions)},
	}
}

// Figures returns the figures of a full-pipeline run: throughput, the p50
// and p99 of submit → executor process start (when measured) and the p50
// of every phase.
func (p *PipelineRun) Figures() []Figure {
	f := p.Throughput.Figures()
	if len(p.ExecStart) > 0 {
		f = append(f, Summarize("submit → executor process start (full pipeline, shim)", p.ExecStart).Figures()...)
	}
	for _, ph := range p.Phases {
		if len(ph.D) > 0 {
			f = append(f, Figure{Name: "phase: " + ph.Name + " p50", Unit: "ms", Value: ms(Summarize(ph.Name, ph.D).P50)})
		}
	}
	return f
}

// Table gathers the figures of several runs of the same measurements and
// shows, for each, its minimum, median and maximum over the runs.
type Table struct {
	names  []string
	unit   map[string]string
	values map[string][]float64
}

// Add records figures of one run; a figure's name identifies it across
// runs.
func (t *Table) Add(figures ...Figure) {
	if t.values == nil {
		t.unit, t.values = map[string]string{}, map[string][]float64{}
	}
	for _, f := range figures {
		if _, ok := t.values[f.Name]; !ok {
			t.names = append(t.names, f.Name)
			t.unit[f.Name] = f.Unit
		}
		t.values[f.Name] = append(t.values[f.Name], f.Value)
	}
}

// Stats returns the minimum, median and maximum of the figure name over
// the runs, and the number of runs that measured it.
func (t *Table) Stats(name string) (lo, med, hi float64, n int) {
	v := slices.Clone(t.values[name])
	if len(v) == 0 {
		return 0, 0, 0, 0
	}
	slices.Sort(v)
	med = v[len(v)/2]
	if len(v)%2 == 0 {
		med = (v[len(v)/2-1] + v[len(v)/2]) / 2
	}
	return v[0], med, v[len(v)-1], len(v)
}

// Write writes the table: aligned text, or a markdown table to paste into
// docs/BENCHMARKS.md.
func (t *Table) Write(w io.Writer, markdown bool) error {
	if markdown {
		var b strings.Builder
		b.WriteString("| figure | min | median | max | unit | runs |\n|---|---:|---:|---:|---|---:|\n")
		for _, name := range t.names {
			lo, med, hi, n := t.Stats(name)
			u := t.unit[name]
			fmt.Fprintf(&b, "| %s | %s | **%s** | %s | %s | %d |\n", name, format(lo, u), format(med, u), format(hi, u), u, n)
		}
		_, err := io.WriteString(w, b.String())
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "figure\tmin\tmedian\tmax\tunit\truns\n")
	for _, name := range t.names {
		lo, med, hi, n := t.Stats(name)
		u := t.unit[name]
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\n", name, format(lo, u), format(med, u), format(hi, u), u, n)
	}
	return tw.Flush()
}

// format prints v in unit u with the precision that unit deserves.
func format(v float64, u string) string {
	switch {
	case u == "bytes" || u == "jobs/s" && v >= 100:
		return fmt.Sprintf("%.0f", v)
	case u == "ms" && v < 10, u == "jobs/s":
		return fmt.Sprintf("%.2f", v)
	}
	return fmt.Sprintf("%.1f", v)
}
