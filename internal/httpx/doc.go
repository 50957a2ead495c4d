// Package httpx holds the transport rules every smartfhir package shares (CONVENTIONS.md CONV-1…3):
// which URLs may be contacted, which origins may receive a credential, bounded body reads,
// Retry-After parsing and backoff, default timeouts, and log redaction.
//
// It is internal: the public packages expose these rules through their Config fields
// (InsecureAllowHTTP, TrustedOrigins, limits), never through this package's types.
package httpx
