// Package redisstore keeps the state of SMART on FHIR apps and jobs in Redis, so that they scale out
// to many processes and machines. It is a package of its own so that only programs that import it
// link go-redis (CONV-8).
//
//   - Sessions and States are launch.SessionStore and launch.StateStore: a launch that starts on one
//     instance behind a load balancer finishes on another, and a state is accepted once however
//     many instances receive its callback (GETDEL, CONV-5, SEC-01).
//   - Tokens is a smart.TokenStore for backend.Config and smart.CachingTokenSource, and the Store
//     itself is a smart.Locker: twenty workers sharing a client fetch one token per expiry between
//     them, not twenty (BS-05 across processes). The same lock makes a launch's refresh
//     single-flight across replicas, so a rotated refresh token is never redeemed twice (REF-04,
//     SEC-06).
//
// Every value is encrypted at rest with AES-256-GCM under keys that rotate without logging anyone
// out, bound to its Redis key, and expires with what it holds (SEC-07). Redis key names are hashes:
// no session id or state appears in them. Every call has a timeout; when Redis is down or slow,
// calls fail with an error wrapping ErrUnavailable (apps answer 503, see ErrorHandler) and the
// Store recovers by itself when Redis comes back.
//
// Specifications and references:
//   - SMART App Launch 2.2, app protection and token storage: https://hl7.org/fhir/smart-app-launch/app-launch.html
//   - SMART Backend Services: https://hl7.org/fhir/smart-app-launch/backend-services.html
//   - RFC 9700 §4.14 (refresh token rotation and reuse detection): https://www.rfc-editor.org/rfc/rfc9700#section-4.14
//   - Redis distributed locks: https://redis.io/docs/latest/develop/use/patterns/distributed-locks/
//   - Redis URLs: https://www.iana.org/assignments/uri-schemes/prov/redis and go-redis ParseURL
//
// Redis 6.2 or later (GETDEL) is required; Valkey works too.
//
// # Logging
//
// go-redis logs some events itself ("redis: … pool.go: …" while the server is unreachable) through a
// single process-wide logger, on stderr by default. This package never replaces it, since that is the
// program's choice: call redis.SetLogger once at start-up to route or silence those lines (the
// smartfhir CLI shows them only with --verbose; this package's tests install a quiet one in TestMain).
// Store errors are returned as usual either way.
//
// # Use
//
//	keys, err := redisstore.ParseKeys(os.Getenv("SMARTFHIR_STORE_KEYS"))
//	st, err := redisstore.Open(ctx, "rediss://app:PASSWORD@redis.internal:6380/0",
//		redisstore.Options{Keys: keys})
//	defer st.Close()
//
//	app := &launch.Config{…, StateStore: st.States(), SessionStore: st.Sessions(),
//		OnError: redisstore.ErrorHandler(nil)}
//	job := &backend.Config{…, Store: st.Tokens(), Locker: st}
package redisstore
