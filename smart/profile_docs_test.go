package smart_test

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/smartfhir/smartfhir/smart"
)

// TestProfileDocsTable keeps docs/profiles.md honest: its preset × setting table has a column per
// preset and a row per setting, every cell cites a source that the page lists, and every value is the
// preset's.
func TestProfileDocsTable(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile("../docs/profiles.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	var header []string
	rows := map[string][]string{}
scan:
	for line := range strings.SplitSeq(doc, "\n") {
		cells := strings.Split(strings.Trim(line, "| "), " | ")
		switch {
		case strings.HasPrefix(line, "| setting | generic"):
			header = cells[1:]
		case header != nil && strings.HasPrefix(line, "| `") && len(cells) == len(header)+1:
			rows[strings.Trim(cells[0], "`")] = cells[1:]
		case header != nil && line == "" && len(rows) > 0:
			break scan
		}
	}
	if !slices.Equal(slices.Sorted(slices.Values(header)), smart.ProfileNames()) {
		t.Fatalf("table columns %v, presets %v", header, smart.ProfileNames())
	}
	cellRE := regexp.MustCompile(`^(.*) \[([A-Z0-9, ]+)\]$`)
	for _, name := range header {
		p, _ := smart.LookupProfile(name)
		var m map[string]any
		raw, _ := json.Marshal(p)
		_ = json.Unmarshal(raw, &m)
		for key, v := range m {
			if key == "name" || key == "description" {
				continue
			}
			row, ok := rows[key]
			if !ok {
				t.Errorf("no row for %q", key)
				continue
			}
			cell := row[slices.Index(header, name)]
			mm := cellRE.FindStringSubmatch(cell)
			if mm == nil {
				t.Errorf("%s/%s: cell %q has no [source]", name, key, cell)
				continue
			}
			if got, want := strings.Trim(mm[1], "*"), docValue(v); got != want {
				t.Errorf("%s/%s: the page says %s, the preset %s", name, key, got, want)
			}
			for src := range strings.SplitSeq(mm[2], ", ") {
				if !strings.Contains(doc, "- **"+src+"** ") {
					t.Errorf("%s/%s: source %s is not listed", name, key, src)
				}
			}
		}
	}
}

// docValue writes a JSON value the way the table does.
func docValue(v any) string {
	switch v := v.(type) {
	case bool:
		if v {
			return "yes"
		}
		return "no"
	case nil:
		return "—"
	case string:
		if v == "" {
			return "—"
		}
		return "`" + v + "`"
	case []any:
		if len(v) == 0 {
			return "—"
		}
		parts := make([]string, len(v))
		for i, x := range v {
			parts[i] = fmt.Sprintf("`%v`", x)
		}
		return strings.Join(parts, ", ")
	case map[string]any:
		if len(v) == 0 {
			return "—"
		}
		var parts []string
		for _, k := range slices.Sorted(maps.Keys(v)) {
			parts = append(parts, fmt.Sprintf("`%s: %v`", k, v[k]))
		}
		return strings.Join(parts, ", ")
	default:
		return fmt.Sprintf("`%v`", v)
	}
}
