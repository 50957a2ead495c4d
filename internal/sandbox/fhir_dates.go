package sandbox

import (
	"errors"
	"strings"
	"time"
)

// dateParam is a FHIR date search value: a comparison prefix and the range its precision
// implies ("2024" is all of 2024; "2024-03-01T10:00:00Z" is one second).
type dateParam struct {
	prefix string
	lo, hi time.Time
}

var errDatePrefix = errors.New("unsupported date prefix (want eq, ne, gt, lt, ge, le, sa or eb)")

// parseDateParam parses "[prefix]value".
func parseDateParam(v string) (dateParam, error) {
	p := dateParam{prefix: "eq"}
	if len(v) >= 2 && v[0] >= 'a' && v[0] <= 'z' {
		p.prefix, v = v[:2], v[2:]
		switch p.prefix {
		case "eq", "ne", "gt", "lt", "ge", "le", "sa", "eb":
		default:
			return p, errDatePrefix
		}
	}
	var err error
	p.lo, p.hi, err = parseDateRange(v)
	return p, err
}

// matches compares a target range [lo, hi) with p, following the FHIR search rules for ranges.
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
		return hi.After(p.hi) || within
	case "le":
		return lo.Before(p.lo) || within
	case "sa":
		return !lo.Before(p.hi)
	case "eb":
		return !hi.After(p.lo)
	default:
		return within
	}
}

// dateTimeLayouts are the FHIR dateTime/instant forms with their precision. A value without a
// zone is read as UTC.
var dateTimeLayouts = []struct {
	layout string
	prec   time.Duration
}{
	{"2006-01-02T15:04:05.999999999Z07:00", time.Millisecond},
	{"2006-01-02T15:04:05Z07:00", time.Second},
	{"2006-01-02T15:04Z07:00", time.Minute},
	{"2006-01-02T15:04:05.999999999", time.Millisecond},
	{"2006-01-02T15:04:05", time.Second},
	{"2006-01-02T15:04", time.Minute},
}

var errDateFormat = errors.New("not a FHIR date, dateTime or instant (a '+' offset must be sent as %2B)")

// parseDateRange parses a FHIR date, dateTime or instant into the range its precision covers.
func parseDateRange(v string) (lo, hi time.Time, err error) {
	switch len(v) {
	case 4:
		lo, err = time.Parse("2006", v)
		return lo, lo.AddDate(1, 0, 0), dateErr(err)
	case 7:
		lo, err = time.Parse("2006-01", v)
		return lo, lo.AddDate(0, 1, 0), dateErr(err)
	case 10:
		lo, err = time.Parse(time.DateOnly, v)
		return lo, lo.AddDate(0, 0, 1), dateErr(err)
	}
	if !strings.Contains(v, "T") {
		return lo, hi, errDateFormat
	}
	for _, l := range dateTimeLayouts {
		if t, err := time.Parse(l.layout, v); err == nil {
			prec := l.prec
			if prec == time.Millisecond && !strings.Contains(v, ".") {
				continue
			}
			return t.UTC(), t.UTC().Add(prec), nil
		}
	}
	return lo, hi, errDateFormat
}

func dateErr(err error) error {
	if err != nil {
		return errDateFormat
	}
	return nil
}
