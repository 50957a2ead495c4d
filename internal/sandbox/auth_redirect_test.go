package sandbox

import "testing"

// SEC-05 exact match, with RFC 8252 §7.3's loopback port allowance.
func TestRedirectAllowed(t *testing.T) {
	t.Parallel()
	reg := []string{"https://app.example/cb", "http://127.0.0.1/callback", "http://[::1]:7000/cb", "http://localhost:8080/cb"}
	tests := []struct {
		uri string
		ok  bool
	}{
		{"https://app.example/cb", true},
		{"https://app.example/cb/", false},
		{"https://app.example/cb?next=https://evil.example", false},
		{"https://app.example:8443/cb", false},
		{"http://127.0.0.1:53124/callback", true},
		{"http://127.0.0.1/callback", true},
		{"http://127.0.0.1:53124/callback/x", false},
		{"http://127.0.0.1:53124/callback?x=1", false},
		{"https://127.0.0.1:53124/callback", false},
		{"http://user@127.0.0.1:53124/callback", false},
		{"http://[::1]:9999/cb", true},
		{"http://localhost:9999/cb", false}, // RFC 8252 §8.3: no port allowance for localhost
		{"http://127.0.0.2:53124/callback", false},
	}
	for _, tt := range tests {
		if got := redirectAllowed(reg, tt.uri); got != tt.ok {
			t.Errorf("redirectAllowed(%q) = %v, want %v", tt.uri, got, tt.ok)
		}
	}
}
