package bulk

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestScanObject(t *testing.T) { // BULK-08: the filter's top-level scan agrees with encoding/json
	t.Parallel()
	tests := []struct {
		in string
		ok bool
	}{
		{`{}`, true},
		{` { "a" : 1 , "b":"x\"}y" ,"c":{"d":[1,{"e":"]"}]},"f":true,"g":null,"h":-1.5e3} `, true},
		{`{"a":[1,2],"b":{}}`, true},
		{`{"a":1,}`, false},
		{`{"a" 1}`, false},
		{`{"a":"unterminated}`, false},
		{`{"a":{"b":1}`, false},
		{`{"a":1} trailing`, false},
		{`[1]`, false},
		{`{"a":}`, false},
		{``, false},
	}
	for _, tt := range tests {
		got := map[string]string{}
		ok := scanObject([]byte(tt.in), func(name, value []byte) bool {
			got[string(name)] = string(value)
			return true
		})
		if ok != tt.ok {
			t.Errorf("%s: ok = %v", tt.in, ok)
			continue
		}
		if !ok {
			continue
		}
		var want map[string]json.RawMessage
		if err := json.Unmarshal([]byte(tt.in), &want); err != nil {
			t.Fatalf("%s: %v", tt.in, err)
		}
		for k, v := range want {
			if strings.TrimSpace(got[k]) != string(v) {
				t.Errorf("%s: %s = %q, want %q", tt.in, k, got[k], v)
			}
		}
		if len(got) != len(want) {
			t.Errorf("%s: %d members, want %d", tt.in, len(got), len(want))
		}
	}
}

func FuzzScanObject(f *testing.F) {
	f.Add([]byte(obsVitals))
	f.Add([]byte(`{"a":"\\"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		members := map[string]string{}
		ok := scanObject(b, func(name, value []byte) bool {
			members[string(name)] = string(value)
			return true
		})
		var want map[string]json.RawMessage
		if json.Unmarshal(b, &want) != nil {
			return // scanObject only delimits; what encoding/json accepts, it must split the same way
		}
		if !ok {
			t.Fatalf("%q: refused, encoding/json accepts it", b)
		}
		for name := range members {
			if strings.ContainsRune(name, '\\') || !isASCII(name) {
				return // escaped or invalid UTF-8 names decode to other strings
			}
		}
		for name, v := range members {
			if string(want[name]) != v {
				t.Errorf("%q: member %q = %q, want %q", b, name, v, want[name])
			}
		}
	})
}
