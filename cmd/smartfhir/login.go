package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/smartfhir/smartfhir/internal/httpx"
	"github.com/smartfhir/smartfhir/launch"
	"github.com/smartfhir/smartfhir/smart"
)

func newLoginCmd(g *globals) *cobra.Command {
	var port int
	var noBrowser bool
	cmd := &cobra.Command{
		Use:   "login",
		Short: "log in to a FHIR server from the terminal (SMART standalone launch)",
		Long: `login runs a SMART standalone launch from the terminal: authorization code with PKCE S256 and a
fresh state, the browser sent to the server's authorize endpoint, and a loopback redirect on
http://127.0.0.1:PORT/callback. PORT is any free port by default, which servers that follow RFC 8252
§7.3 accept for a registered loopback redirect URI; for the others register a fixed one and pass
--redirect-port. The URL is always printed on stderr; it is opened with the program in
$BROWSER when set, else the platform's opener (xdg-open, open, rundll32), unless --no-browser.
login exits once the code is exchanged, or fails after --timeout.

The tokens are stored encrypted under the user config directory (AES-256-GCM; the key is a 0600
file beside them), keyed by FHIR base and --profile. Later 'smartfhir get', 'search' and
'introspect' with the same --fhir or --profile use the login and refresh it as needed; 'smartfhir
logout' revokes and deletes it.

Confidential clients add --key (private_key_jwt) or SMARTFHIR_CLIENT_SECRET; they are needed again
by later commands, for refreshes. Default scope: launch/patient openid fhirUser offline_access
patient/*.rs (patient/*.read on SMART v1 servers).

  smartfhir login --fhir http://127.0.0.1:9090/fhir --client-id my-app
  smartfhir login --profile sandbox --no-browser

A profile is a named line of flags in os.UserConfigDir()/smartfhir/config.json (SMARTFHIR_CONFIG_DIR
overrides the directory, which also holds the stored logins):

  {"profiles": {"sandbox": {"fhir": "http://127.0.0.1:9090/fhir", "client_id": "my-app",
    "auth": "public", "scope": "launch/patient patient/*.rs offline_access"}}}

Profile keys: fhir, client_id, auth (public, secret, private_key_jwt), key_file, kid, scope, preset,
headers, trust_origins, insecure_http. Flags and SMARTFHIR_* variables override them.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runLogin(cmd.Context(), g, port, noBrowser)
		},
	}
	g.serverFlags(cmd)
	cmd.Flags().IntVar(&port, "redirect-port", 0, "port of the loopback redirect http://127.0.0.1:PORT/callback (default: any free port)")
	cmd.Flags().BoolVar(&noBrowser, "no-browser", false, "only print the URL to open")
	return cmd
}

// loginResult is what the callback hands back to runLogin.
type loginResult struct {
	sess *launch.Session
	err  error
}

func runLogin(ctx context.Context, g *globals, port int, noBrowser bool) error {
	s, ctx, cancel, err := g.begin(ctx)
	if err != nil {
		return err
	}
	defer cancel()
	if s.ClientID == "" {
		return usagef("login needs --client-id (the client registered with the server for redirect URI http://127.0.0.1:PORT/callback)")
	}
	if port < 0 || port > 65535 {
		return usagef("--redirect-port %d is not a port", port)
	}
	cr, err := g.credentials(s)
	if err != nil {
		return err
	}
	cfg, err := g.discover(ctx, s)
	if err != nil {
		return err
	}
	if err := s.Vendor.CheckLaunch(cfg); err != nil { // g.discover set the vendor profile
		return fmt.Errorf("%s does not support a user login: %w", httpx.Redact(s.FHIR), err)
	}
	if err := cfg.CheckEndpointOrigins(s.TrustOrigins...); err != nil {
		return fmt.Errorf("%w\n(pass --trust-origin if that origin belongs to the server)", err)
	}
	scopes := strings.Fields(s.Scope)
	if len(scopes) == 0 {
		scopes = defaultLoginScopes(cfg)
	}
	dir, err := g.configDir()
	if err != nil {
		return err
	}
	st, err := openLoginStore(dir, true)
	if err != nil {
		return err
	}

	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return fmt.Errorf("loopback redirect: %w (pick another --redirect-port)", err)
	}
	redirectURL := fmt.Sprintf("http://127.0.0.1:%d/callback", ln.Addr().(*net.TCPAddr).Port)
	lc := launchConfig(s, cr, st, redirectURL, scopes)
	sess, err := g.awaitLogin(ctx, s, lc, ln, noBrowser)
	if err != nil {
		return err
	}
	key := loginKey(s.FHIR, s.Profile)
	if err := st.put(key, &loginRecord{
		FHIR: s.FHIR, Profile: s.Profile, ClientID: s.ClientID, Auth: s.Auth, RedirectURL: redirectURL,
		Scope: strings.Join(scopes, " "), Key: sess.Key(), TokenURL: cfg.TokenEndpoint,
		RevocationURL: cfg.RevocationEndpoint, IntrospectionURL: cfg.IntrospectionEndpoint, Created: time.Now().UTC(),
	}); err != nil {
		return err
	}
	return printLogin(g, s, sess, st.dir)
}

// awaitLogin serves the loopback redirect on ln, prints (and opens) the authorize URL, and waits
// for the callback or ctx. It returns the completed launch. The launch package does the protocol:
// PKCE S256, the single-use state bound to this command's browser session, the RFC 9207 iss check,
// the code exchange and the id_token verification. The listener is closed on return.
func (g *globals) awaitLogin(ctx context.Context, s *serverSettings, lc *launch.Config, ln net.Listener, noBrowser bool) (*launch.Session, error) {
	defer ln.Close()
	results := make(chan loginResult, 1)
	notices := make(chan string, 8)
	send := func(r loginResult) {
		select {
		case results <- r:
		default: // a second callback (a reload) changes nothing
		}
	}
	lc.OnError = func(w http.ResponseWriter, r *http.Request, err error) {
		launch.ErrorPage(w, r, err)
		if errors.Is(err, launch.ErrStateUnknown) {
			// Not the answer to our request (a stray or forged redirect, a reload): keep waiting,
			// so that another local process cannot end the login.
			select {
			case notices <- "a redirect without this login's state was refused; still waiting":
			default:
			}
			return
		}
		send(loginResult{err: err})
	}

	// The command is the browser session: the launch binds its state to a session cookie, which is
	// set on a recorder here and added to the callback request below, so that the authorize URL
	// itself can be opened and printed. Later commands resume the login by its key instead.
	rec := headerRecorder{}
	redirectURL := lc.RedirectURL
	start, err := http.NewRequestWithContext(ctx, http.MethodGet, redirectURL, nil)
	if err != nil {
		return nil, err
	}
	authURL, err := lc.AuthorizeURL(ctx, rec, start, launch.Request{Issuer: s.FHIR})
	if err != nil {
		return nil, fmt.Errorf("login: %w", err)
	}
	cookie := sessionCookie((&http.Response{Header: http.Header(rec)}).Cookies(), "smartfhir_cli")
	if cookie == "" {
		return nil, errors.New("login: the launch set no session cookie")
	}

	mux := http.NewServeMux()
	callback := lc.CallbackHandler(func(w http.ResponseWriter, r *http.Request, sess *launch.Session) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, `<!doctype html><meta charset="utf-8"><title>Logged in</title><p>Logged in. You can close this tab and go back to the terminal.</p>`)
		send(loginResult{sess: sess})
	})
	mux.HandleFunc("GET /callback", func(w http.ResponseWriter, r *http.Request) {
		r = r.Clone(r.Context())
		r.Header.Set("Cookie", cookie)
		callback.ServeHTTP(w, r)
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()

	fmt.Fprintf(g.stderr, "Open this URL in a browser to log in to %s:\n\n  %s\n\nWaiting for the redirect to %s …\n", safe(s.FHIR), authURL, redirectURL)
	if !noBrowser {
		if err := g.openBrowser(authURL); err != nil {
			g.warnf("could not open a browser (%v): open the URL above yourself", err)
		}
	}
	for {
		select {
		case n := <-notices:
			g.warnf("%s", n)
		case res := <-results:
			if res.err != nil {
				return nil, fmt.Errorf("login failed: %w", res.err)
			}
			return res.sess, nil
		case <-ctx.Done():
			return nil, fmt.Errorf("login: no redirect arrived at %s within --timeout %s (is that redirect URI registered for client %q?)", redirectURL, g.timeout, s.ClientID)
		}
	}
}

// defaultLoginScopes asks for a patient picked at login, the user's identity, a refresh token and
// read access to the patient's data, in the server's scope syntax (DISC-16).
func defaultLoginScopes(cfg *smart.Configuration) []string {
	out := []string{"launch/patient", "openid", "fhirUser", "offline_access"}
	if cfg.ScopeStyle() == smart.ScopeStyleV2 {
		return append(out, "patient/*.rs")
	}
	return append(out, "patient/*.read")
}

// headerRecorder is an http.ResponseWriter that keeps only the headers (the Set-Cookie of the
// launch's browser session).
type headerRecorder http.Header

func (h headerRecorder) Header() http.Header         { return http.Header(h) }
func (h headerRecorder) Write(b []byte) (int, error) { return len(b), nil }
func (h headerRecorder) WriteHeader(int)             {}

// sessionCookie returns "name=value" of the named cookie.
func sessionCookie(cookies []*http.Cookie, name string) string {
	i := slices.IndexFunc(cookies, func(c *http.Cookie) bool { return c.Name == name })
	if i < 0 {
		return ""
	}
	return (&http.Cookie{Name: cookies[i].Name, Value: cookies[i].Value}).String()
}

// printLogin reports a login: JSON on stdout with --json, else a summary on stderr. No token is
// printed.
func printLogin(g *globals, s *serverSettings, sess *launch.Session, dir string) error {
	for _, w := range sess.Warnings {
		g.warnf("%s", oneLine(w))
	}
	if g.json {
		return printJSON(g.stdout, map[string]any{
			"fhir": s.FHIR, "profile": s.Profile, "scope": sess.Scopes.String(), "patient": sess.Patient,
			"encounter": sess.Encounter, "fhir_user": sess.FHIRUser, "expires_at": sess.Expiry.UTC().Format(time.RFC3339),
			"refreshable": sess.Refreshable,
		})
	}
	fmt.Fprintf(g.stderr, "Logged in to %s", safe(s.FHIR))
	if sess.FHIRUser != "" {
		fmt.Fprintf(g.stderr, " as %s", safe(sess.FHIRUser))
	}
	fmt.Fprintf(g.stderr, ".\n  scope:    %s\n", safe(sess.Scopes.String()))
	if sess.Patient != "" {
		fmt.Fprintf(g.stderr, "  patient:  %s\n", safe(sess.Patient))
	}
	fmt.Fprintf(g.stderr, "  expires:  %s (%s)\n", until(sess.Expiry, time.Now()), pick(sess.Refreshable, "refreshable", "no refresh token: log in again then"))
	fmt.Fprintf(g.stderr, "Stored, encrypted, in %s; 'smartfhir get' and 'search' with the same --fhir/--profile use it.\n", dir)
	return nil
}
