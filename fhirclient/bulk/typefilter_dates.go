package bulk

import (
	"strings"
	"time"
)

// dateParam is one date search value: its prefix and the range [lo, hi) its precision covers
// (2018 is the whole year, 2018-07-01T10:00:00Z one second).
type dateParam struct {
	prefix string
	lo, hi time.Time
}

// Open ends of a Period.
var (
	minTime = time.Time{}
	maxTime = time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC)
)

// parseDateParam parses "[prefix]value"; ok is false for an unknown prefix (ap) or a malformed
// value.
func parseDateParam(v string) (dateParam, bool) {
	p := dateParam{prefix: "eq"}
	if len(v) >= 2 && v[0] >= 'a' && v[0] <= 'z' {
		p.prefix, v = v[:2], v[2:]
		switch p.prefix {
		case "eq", "ne", "gt", "lt", "ge", "le", "sa", "eb":
		default:
			return p, false
		}
	}
	var ok bool
	p.lo, p.hi, ok = parseFHIRDate(v)
	return p, ok
}

// match reports whether any of the element values matches (FHIR search, "Prefixes": ranges are
// compared, not points). A value the client cannot read (an age, a string, a Timing) is unknown.
func (p dateParam) match(values []any) tri {
	result := triFalse
	for _, v := range values {
		lo, hi, ok := dateRange(v)
		if !ok {
			result = triUnknown
			continue
		}
		if p.matches(lo, hi) {
			return triTrue
		}
	}
	return result
}

// matches compares a target range [lo, hi) with p. ge and le take the widest reading of FHIR's
// rules, as HAPI does: any part of the target at or after (before) the search value; so nothing
// a server would return is ruled out.
func (p dateParam) matches(lo, hi time.Time) bool {
	within := !lo.Before(p.lo) && !hi.After(p.hi)
	switch p.prefix {
	case "ne":
		return !within
	case "gt":
		return hi.After(p.hi)
	case "lt":
		return lo.Before(p.lo)
	case "ge":
		return hi.After(p.lo)
	case "le":
		return lo.Before(p.hi)
	case "sa":
		return !lo.Before(p.hi)
	case "eb":
		return !hi.After(p.lo)
	default:
		return within
	}
}

// dateRange reads a date, dateTime, instant or Period element value.
func dateRange(v any) (lo, hi time.Time, ok bool) {
	if c, isChoice := v.(choice); isChoice {
		switch c.typ {
		case "Date", "DateTime", "Instant", "Period":
			v = c.v
		default:
			return lo, hi, false
		}
	}
	switch v := v.(type) {
	case string:
		return parseFHIRDate(v)
	case map[string]any:
		start, hasStart := v["start"].(string)
		end, hasEnd := v["end"].(string)
		if !hasStart && !hasEnd {
			return lo, hi, false
		}
		lo, hi = minTime, maxTime
		if hasStart {
			if lo, _, ok = parseFHIRDate(start); !ok {
				return lo, hi, false
			}
		}
		if hasEnd {
			if _, hi, ok = parseFHIRDate(end); !ok {
				return lo, hi, false
			}
		}
		return lo, hi, true
	}
	return lo, hi, false
}

// parseFHIRDate reads a FHIR date (YYYY, YYYY-MM, YYYY-MM-DD), dateTime or instant as the range
// its precision covers. A value without a zone is read as UTC.
func parseFHIRDate(s string) (lo, hi time.Time, ok bool) {
	var err error
	switch len(s) {
	case 4:
		lo, err = time.Parse("2006", s)
		return lo, lo.AddDate(1, 0, 0), err == nil
	case 7:
		lo, err = time.Parse("2006-01", s)
		return lo, lo.AddDate(0, 1, 0), err == nil
	case 10:
		lo, err = time.Parse(time.DateOnly, s)
		return lo, lo.AddDate(0, 0, 1), err == nil
	}
	_, clock, found := strings.Cut(s, "T")
	if !found {
		return lo, hi, false
	}
	prec := precisionOf(clock)
	for _, layout := range []string{"2006-01-02T15:04:05.999999999Z07:00", "2006-01-02T15:04:05.999999999", "2006-01-02T15:04Z07:00", "2006-01-02T15:04"} {
		if t, err := time.Parse(layout, s); err == nil {
			t = t.UTC()
			return t, t.Add(prec), true
		}
	}
	return lo, hi, false
}

// precisionOf returns the precision of a clock: a minute ("10:00", "10:00+02:00"), a second
// ("10:00:00Z") or a fraction of one ("10:00:00.123": a millisecond).
func precisionOf(clock string) time.Duration {
	clock = strings.TrimSuffix(clock, "Z")
	if i := strings.IndexAny(clock, "+-"); i >= 0 {
		clock = clock[:i]
	}
	if strings.Count(clock, ":") < 2 {
		return time.Minute
	}
	_, frac, ok := strings.Cut(clock, ".")
	if !ok {
		return time.Second
	}
	d := time.Second
	for range min(len(frac), 9) {
		d /= 10
	}
	return d
}
