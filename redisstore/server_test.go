package redisstore_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/smartfhir/smartfhir/redisstore"
)

// redisServer is a real redis-server on a free loopback port, in a temporary directory, killed when
// the test ends (CONV-8: TestRedis… tests skip without redis-server locally and fail under CI=true).
type redisServer struct {
	tb   testing.TB
	port int
	dir  string
	args []string    // extra arguments (ACL users)
	tls  *tls.Config // set: the server listens with TLS only, with this client config

	mu  sync.Mutex
	cmd *exec.Cmd
	log *bytes.Buffer
}

// needRedis returns the path of redis-server, skipping the test when it is missing, or failing it
// under CI=true.
func needRedis(tb testing.TB) string {
	tb.Helper()
	path, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv("CI") == "true" {
			tb.Fatalf("redis-server is required under CI=true: %v", err)
		}
		tb.Skipf("redis-server not installed: %v (apt-get install redis-server)", err)
	}
	return path
}

// startRedis starts a redis-server with extra arguments and waits until it answers PING.
func startRedis(tb testing.TB, extra ...string) *redisServer {
	tb.Helper()
	needRedis(tb)
	return launchRedis(tb, &redisServer{tb: tb, dir: tb.TempDir(), args: extra})
}

// startRedisTLS starts a redis-server that speaks TLS only, with a certificate for localhost and
// 127.0.0.1 issued by a new CA; client is the TLS config that trusts that CA.
func startRedisTLS(tb testing.TB) (r *redisServer, client *tls.Config) {
	tb.Helper()
	needRedis(tb)
	dir := tb.TempDir()
	client = writeTestCerts(tb, dir)
	r = &redisServer{tb: tb, dir: dir, tls: client, args: []string{
		"--tls-cert-file", filepath.Join(dir, "server.crt"), "--tls-key-file", filepath.Join(dir, "server.key"),
		"--tls-ca-cert-file", filepath.Join(dir, "ca.crt"), "--tls-auth-clients", "no"}}
	return launchRedis(tb, r), client
}

func launchRedis(tb testing.TB, r *redisServer) *redisServer {
	tb.Helper()
	tb.Cleanup(r.stop)
	var err error
	for range 5 { // the free port may be taken between the probe and the start
		r.port = freePort(tb)
		if err = r.startErr(); err == nil {
			return r
		}
	}
	tb.Fatalf("redis-server did not start: %v\n%s", err, r.logText())
	return nil
}

// ping checks that the server answers (a NOAUTH or WRONGPASS answer counts: it is up).
func (r *redisServer) ping(ctx context.Context) error {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", r.addr()) // not listening yet: no go-redis dial error logged
	if err != nil {
		return err
	}
	conn.Close()
	c := redis.NewClient(&redis.Options{Addr: r.addr(), MaxRetries: -1, DialTimeout: 200 * time.Millisecond,
		DialerRetries: 1, Protocol: 2, DisableIdentity: true, TLSConfig: r.tls})
	defer c.Close()
	err = c.Ping(ctx).Err()
	if err != nil && (strings.Contains(err.Error(), "NOAUTH") || strings.Contains(err.Error(), "WRONGPASS")) {
		return nil
	}
	return err
}

func (r *redisServer) addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(r.port)) }

// URL is the server's redis:// URL.
func (r *redisServer) URL() string { return "redis://" + r.addr() }

// start (re)starts the server on its port; it fails the test when the server does not come up.
func (r *redisServer) start() {
	r.tb.Helper()
	if err := r.startErr(); err != nil {
		r.tb.Fatalf("redis-server restart: %v\n%s", err, r.logText())
	}
}

func (r *redisServer) startErr() error {
	ports := []string{"--port", strconv.Itoa(r.port)}
	if r.tls != nil {
		ports = []string{"--port", "0", "--tls-port", strconv.Itoa(r.port)}
	}
	args := append(append(ports, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--dir", r.dir, "--daemonize", "no", "--loglevel", "warning"), r.args...)
	cmd := exec.Command("redis-server", args...)
	log := new(bytes.Buffer)
	cmd.Stdout, cmd.Stderr = &lockedWriter{w: log}, &lockedWriter{w: log}
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	r.mu.Lock()
	r.cmd, r.log = cmd, log
	r.mu.Unlock()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return fmt.Errorf("redis-server exited: %s", cmd.ProcessState)
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		err := r.ping(ctx)
		cancel()
		if err == nil {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	_ = cmd.Process.Kill()
	return fmt.Errorf("no PONG within 10 s")
}

// stop kills the server (as a crash would) and waits until its port is closed.
func (r *redisServer) stop() {
	r.mu.Lock()
	cmd := r.cmd
	r.cmd = nil
	r.mu.Unlock()
	if cmd == nil || cmd.Process == nil {
		return
	}
	_ = cmd.Process.Kill()
	for range 200 {
		if err := cmd.Process.Signal(syscall.Signal(0)); err != nil {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// pause stops the process (SIGSTOP): connections open, nothing answers — a hung Redis.
func (r *redisServer) pause() { r.signal(syscall.SIGSTOP) }

// resume continues a paused process (SIGCONT).
func (r *redisServer) resume() { r.signal(syscall.SIGCONT) }

func (r *redisServer) signal(sig syscall.Signal) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cmd != nil {
		_ = r.cmd.Process.Signal(sig)
	}
}

func (r *redisServer) logText() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.log == nil {
		return ""
	}
	return r.log.String()
}

// raw returns a plain go-redis client for the server, to read what the store wrote.
func (r *redisServer) raw(tb testing.TB) *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: r.addr()})
	tb.Cleanup(func() { _ = c.Close() })
	return c
}

func freePort(tb testing.TB) int {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

type lockedWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// newKey returns a random 32-byte encryption key.
func newKey() []byte {
	return randomBytes(redisstore.KeySize)
}

// openStore opens a Store on r with opts (Keys default: one new key); it is closed at cleanup.
func openStore(tb testing.TB, r *redisServer, opts redisstore.Options) *redisstore.Store {
	tb.Helper()
	if opts.Keys == nil {
		opts.Keys = [][]byte{newKey()}
	}
	st, err := redisstore.Open(context.Background(), r.URL(), opts)
	if err != nil {
		tb.Fatalf("Open: %v", err)
	}
	tb.Cleanup(func() { _ = st.Close() })
	return st
}

// dumpRedis returns every key and value in the server's database.
func dumpRedis(tb testing.TB, c *redis.Client) map[string][]byte {
	tb.Helper()
	ctx := context.Background()
	keys, err := c.Keys(ctx, "*").Result()
	if err != nil {
		tb.Fatal(err)
	}
	out := map[string][]byte{}
	for _, k := range keys {
		v, err := c.Get(ctx, k).Bytes()
		if err != nil {
			tb.Fatalf("GET %s: %v", k, err)
		}
		out[k] = v
	}
	return out
}
