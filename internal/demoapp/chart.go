package demoapp

import (
	"fmt"
	"html"
	"html/template"
	"math"
	"slices"
	"strings"
	"time"
)

// chartSeries picks the vital sign with the most numeric readings (at least two).
func chartSeries(rows []observation) (name, unit string, pts []point) {
	byCode := map[string][]point{}
	meta := map[string][2]string{}
	for _, r := range rows {
		t, ok := parseDate(r.Date)
		if !r.HasNumber || !ok {
			continue
		}
		byCode[r.Code] = append(byCode[r.Code], point{t, r.Number})
		meta[r.Code] = [2]string{r.Display, r.Unit}
	}
	best := ""
	for code, ps := range byCode {
		if len(ps) > len(byCode[best]) || len(ps) == len(byCode[best]) && code < best {
			best = code
		}
	}
	if len(byCode[best]) < 2 {
		return "", "", nil
	}
	pts = byCode[best]
	slices.SortFunc(pts, func(a, b point) int { return a.t.Compare(b.t) })
	return meta[best][0], meta[best][1], pts
}

type point struct {
	t time.Time
	v float64
}

func parseDate(s string) (time.Time, bool) {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", time.DateOnly, "2006-01", "2006"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}

// svgChart renders a small line chart as inline SVG. Every number is formatted by us and the
// labels are escaped, so the markup is safe to embed.
func svgChart(name, unit string, pts []point) template.HTML {
	if len(pts) < 2 {
		return ""
	}
	const w, h, pad = 640.0, 220.0, 40.0
	t0, t1 := pts[0].t, pts[len(pts)-1].t
	lo, hi := pts[0].v, pts[0].v
	for _, p := range pts {
		lo, hi = math.Min(lo, p.v), math.Max(hi, p.v)
	}
	if hi == lo {
		hi, lo = hi+1, lo-1
	}
	span := t1.Sub(t0).Seconds()
	if span <= 0 {
		span = 1
	}
	x := func(t time.Time) float64 { return pad + (w-2*pad)*t.Sub(t0).Seconds()/span }
	y := func(v float64) float64 { return h - pad - (h-2*pad)*(v-lo)/(hi-lo) }
	var path strings.Builder
	var dots strings.Builder
	for i, p := range pts {
		cmd := "L"
		if i == 0 {
			cmd = "M"
		}
		fmt.Fprintf(&path, "%s%.1f %.1f ", cmd, x(p.t), y(p.v))
		fmt.Fprintf(&dots, `<circle cx="%.1f" cy="%.1f" r="3"><title>%s: %s %s</title></circle>`,
			x(p.t), y(p.v), p.t.Format(time.DateOnly), trimFloat(p.v), html.EscapeString(unit))
	}
	title := html.EscapeString(name)
	if unit != "" {
		title += " (" + html.EscapeString(unit) + ")"
	}
	return template.HTML(fmt.Sprintf(`<svg class="chart" viewBox="0 0 %.0f %.0f" role="img" aria-label="%s">
<text x="%.0f" y="20" class="t">%s</text>
<line x1="%.0f" y1="%.0f" x2="%.0f" y2="%.0f" class="axis"/>
<text x="4" y="%.1f" class="l">%s</text><text x="4" y="%.1f" class="l">%s</text>
<text x="%.0f" y="%.0f" class="l">%s</text><text x="%.0f" y="%.0f" class="l" text-anchor="end">%s</text>
<path d="%s" class="line"/>%s</svg>`,
		w, h, title, pad, title,
		pad, h-pad, w-pad, h-pad,
		y(hi)+4, trimFloat(hi), y(lo)+4, trimFloat(lo),
		pad, h-pad+16, t0.Format(time.DateOnly), w-pad, h-pad+16, t1.Format(time.DateOnly),
		strings.TrimSpace(path.String()), dots.String()))
}

func trimFloat(v float64) string {
	return strings.TrimRight(strings.TrimRight(fmt.Sprintf("%.2f", v), "0"), ".")
}
