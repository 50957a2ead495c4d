package smart_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/smartfhir/smartfhir/smart"
	"github.com/smartfhir/smartfhir/smart/smarttest"
)

// Discovery against the in-process sandbox and its discovery faults (DISC-01…16 end to end).
func TestDiscoverSandbox(t *testing.T) {
	t.Parallel()
	tests := []struct {
		fault     string
		fallbacks []smart.Fallback // nil: the default (CapabilityStatement)
		want      error
		check     func(*testing.T, *smarttest.Server, *smart.Configuration)
	}{
		{"", nil, nil, func(t *testing.T, srv *smarttest.Server, cfg *smart.Configuration) {
			if cfg.Legacy || cfg.TokenEndpoint != srv.TokenURL || cfg.AuthorizationEndpoint != srv.AuthorizeURL {
				t.Errorf("configuration %+v", cfg)
			}
			for name, err := range map[string]error{"launch": cfg.RequireLaunch(), "backend": cfg.RequireBackend(),
				"openid": cfg.RequireOpenID(), "origins": cfg.CheckEndpointOrigins()} {
				if err != nil {
					t.Errorf("%s: %v", name, err)
				}
			}
			if cfg.ScopeStyle() != smart.ScopeStyleV2 || len(cfg.CapabilitySets()) == 0 {
				t.Errorf("style %v, sets %q", cfg.ScopeStyle(), cfg.CapabilitySets())
			}
		}},
		{"discovery_404", nil, nil, func(t *testing.T, srv *smarttest.Server, cfg *smart.Configuration) { // DISC-12
			if !cfg.Legacy || cfg.TokenEndpoint != srv.TokenURL || cfg.DocumentURL != srv.FHIRBase+"/metadata" {
				t.Errorf("fallback configuration %+v", cfg)
			}
		}},
		{"discovery_html", nil, nil, func(t *testing.T, srv *smarttest.Server, cfg *smart.Configuration) {
			if !cfg.Legacy {
				t.Errorf("an HTML page should have led to the CapabilityStatement: %+v", cfg)
			}
		}},
		{"discovery_html", []smart.Fallback{}, smart.ErrNotJSON, nil},                           // DISC-02
		{"discovery_truncated", []smart.Fallback{}, smart.ErrNotJSON, nil},                      // DISC-02
		{"discovery_no_token_endpoint", []smart.Fallback{}, smart.ErrMissingTokenEndpoint, nil}, // DISC-03
		{"discovery_huge", nil, smart.ErrBodyTooLarge, nil},                                     // DISC-14
		{"discovery_redirect_foreign", nil, smart.ErrRedirectRefused, nil},                      // DISC-14
		{"discovery_slow", nil, context.DeadlineExceeded, nil},                                  // DISC-14
		{"discovery_relative_urls", nil, nil, func(t *testing.T, srv *smarttest.Server, cfg *smart.Configuration) { // DISC-06
			if cfg.TokenEndpoint != srv.TokenURL || cfg.AuthorizationEndpoint != srv.AuthorizeURL || len(cfg.Warnings) == 0 {
				t.Errorf("relative endpoints: %q %q %q", cfg.TokenEndpoint, cfg.AuthorizationEndpoint, cfg.Warnings)
			}
		}},
		{"discovery_plain_pkce", nil, nil, func(t *testing.T, srv *smarttest.Server, cfg *smart.Configuration) { // DISC-04
			if err := cfg.RequireLaunch(); !errors.Is(err, smart.ErrNoS256) {
				t.Errorf("RequireLaunch = %v", err)
			}
		}},
		{"discovery_foreign_endpoints", nil, nil, func(t *testing.T, srv *smarttest.Server, cfg *smart.Configuration) { // DISC-07
			if err := cfg.CheckEndpointOrigins(); !errors.Is(err, smart.ErrUntrustedEndpoint) {
				t.Errorf("CheckEndpointOrigins = %v", err)
			}
		}},
	}
	for _, tt := range tests {
		name := tt.fault
		if name == "" {
			name = "no fault"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			srv := smarttest.NewServer(t)
			if tt.fault != "" {
				srv.Fault(tt.fault, 1)
			}
			timeout := 10 * time.Second
			if tt.fault == "discovery_slow" {
				timeout = 300 * time.Millisecond
			}
			ctx, cancel := context.WithTimeout(t.Context(), timeout)
			defer cancel()
			d := smart.Discoverer{Fallbacks: tt.fallbacks}
			cfg, err := d.Discover(ctx, srv.FHIRBase)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Discover = %v, want %v", err, tt.want)
			}
			if tt.check != nil {
				tt.check(t, srv, cfg)
			}
		})
	}
}

// DISC-16, SCOPE-12: a SMART v1 sandbox gets v1 scopes; its document lacks the PKCE list, which is
// tolerated (DISC-04).
func TestDiscoverSandboxV1(t *testing.T) {
	t.Parallel()
	srv := smarttest.NewServer(t, smarttest.WithVersion("v1"))
	cfg, err := smart.Discover(t.Context(), nil, srv.FHIRBase)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.ScopeStyle() != smart.ScopeStyleV1 || cfg.RequireLaunch() != nil {
		t.Errorf("style %v, launch %v", cfg.ScopeStyle(), cfg.RequireLaunch())
	}
	if got := smart.MustParseScopes("system/*.rs").Format(cfg.ScopeStyle()); got != "system/*.read" {
		t.Errorf("v1 scope = %q", got)
	}
}
