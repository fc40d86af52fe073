package httpapi

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"hash"
	"log/slog"
	"net/http"
	"time"

	"github.com/sesgate/sesgate/gateway"
)

// Idempotency: a request with an Idempotency-Key header is claimed in the
// shared store (Options.Idempotency, a gateway.IdempotencyStore) under its
// tenant before it is submitted, and its 200 answer is kept there for
// gateway.IdempotencyTTL; see the package doc for the answers.
const (
	// HeaderIdempotencyKey names a request; HeaderReplayed marks an answer
	// given again from the store.
	HeaderIdempotencyKey = "Idempotency-Key"
	HeaderReplayed       = "Idempotent-Replayed"
	// leaseMargin is added to the submit timeout for the lease of an
	// in-flight claim: once it ends the submit was cancelled long ago, so
	// a crashed replica blocks a key for no longer than this.
	leaseMargin = 30 * time.Second
	// idemCallTimeout bounds one store call.
	idemCallTimeout = 5 * time.Second
	// Retry-After of idempotency refusals: in flight (409), store down (503).
	inFlightRetry  = time.Second
	idemStoreRetry = 5 * time.Second
)

// storedAnswer is the record kept for a key: the status and the exact JSON
// body of the first answer.
type storedAnswer struct {
	Status int             `json:"status"`
	Body   json.RawMessage `json:"body"`
}

// idemKey reads and checks the Idempotency-Key header: absent, or once
// with 1 to gateway.MaxIdempotencyKey printable ASCII characters.
func idemKey(r *http.Request) (string, error) {
	vals := r.Header.Values(HeaderIdempotencyKey)
	switch {
	case len(vals) == 0:
		return "", nil
	case len(vals) > 1:
		return "", gateway.Errorf(gateway.CodeMalformed, "Idempotency-Key header given more than once")
	case vals[0] == "" || len(vals[0]) > gateway.MaxIdempotencyKey || !printableASCII(vals[0]):
		return "", gateway.Errorf(gateway.CodeMalformed,
			"Idempotency-Key header must be 1 to %d printable ASCII characters", gateway.MaxIdempotencyKey)
	}
	return vals[0], nil
}

// fingerprinter starts the digest of a request: the endpoint (method,
// path, query) and media type now, the body as it is read. nil when the
// request has no key.
func fingerprinter(r *http.Request, key string, json bool) hash.Hash {
	if key == "" {
		return nil
	}
	d := sha256.New()
	kind := "message/rfc822"
	if json {
		kind = "application/json"
	}
	d.Write([]byte(r.Method + " " + r.URL.Path + "?" + r.URL.RawQuery + "\n" + kind + "\n"))
	return d
}

// idemClaim is a claimed key: complete or release it once answered.
type idemClaim struct {
	h          *Handler
	tenant     string
	key, owner string
}

// claimKey claims key for the request with digest d. It returns the
// claim, or replayed true after writing the stored answer, or an error to
// answer (in flight 409, reused 422, store unavailable 503: nothing is
// sent without the check).
func (h *Handler) claimKey(w http.ResponseWriter, r *http.Request, t *gateway.Tenant, key, owner string, d hash.Hash) (*idemClaim, bool, error) {
	if h.idem == nil {
		return nil, false, gateway.Errorf(gateway.CodeMalformed, "Idempotency-Key is not supported: this gateway has no idempotency store")
	}
	fp := hex.EncodeToString(d.Sum(nil))
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), idemCallTimeout)
	defer cancel()
	c, err := h.idem.ClaimIdempotency(ctx, t.ID, key, fp, owner, h.idemLease)
	if err != nil {
		return nil, false, &gateway.Error{Code: gateway.CodeStoreUnavailable, Cause: err, RetryAfter: idemStoreRetry,
			Msg: "idempotency store unavailable; nothing was sent, try again later"}
	}
	switch c.State {
	case gateway.IdemClaimed:
		return &idemClaim{h: h, tenant: t.ID, key: key, owner: owner}, false, nil
	case gateway.IdemInFlight:
		return nil, false, &gateway.Error{Code: gateway.CodeIdempotencyInFlight, RetryAfter: inFlightRetry,
			Msg: "a request with this Idempotency-Key is still in flight; retry later for its answer"}
	case gateway.IdemDone:
		var a storedAnswer
		if err := json.Unmarshal(c.Answer, &a); err != nil || a.Status == 0 {
			return nil, false, gateway.Wrap(gateway.CodeInternal, err, "stored idempotent answer unreadable")
		}
		w.Header().Set(HeaderReplayed, "true")
		writeRaw(w, a.Status, a.Body)
		return nil, true, nil
	}
	return nil, false, gateway.Errorf(gateway.CodeIdempotencyKeyReused,
		"this Idempotency-Key was used for a different request (another endpoint or body) in the last %v", gateway.IdempotencyTTL)
}

// complete stores the answer; a failure is logged (the message was sent:
// the key stays in flight until its lease ends).
func (c *idemClaim) complete(status int, body []byte) {
	if c == nil {
		return
	}
	rec, _ := json.Marshal(storedAnswer{Status: status, Body: bytes.TrimSpace(body)})
	ctx, cancel := context.WithTimeout(context.Background(), idemCallTimeout)
	defer cancel()
	if err := c.h.idem.CompleteIdempotency(ctx, c.tenant, c.key, c.owner, rec, gateway.IdempotencyTTL); err != nil {
		c.h.log.LogAttrs(ctx, slog.LevelError, "idempotency answer not stored; a retry after the lease may send again",
			slog.String("tenant", c.tenant), slog.String("id", c.owner), slog.String("error", err.Error()))
	}
}

// release frees the key after a failed request, so the app may retry it.
func (c *idemClaim) release() {
	if c == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), idemCallTimeout)
	defer cancel()
	if err := c.h.idem.ReleaseIdempotency(ctx, c.tenant, c.key, c.owner); err != nil {
		c.h.log.LogAttrs(ctx, slog.LevelWarn, "idempotency key not released; it frees when its lease ends",
			slog.String("tenant", c.tenant), slog.String("id", c.owner), slog.String("error", err.Error()))
	}
}

// writeRaw writes a JSON body as is, with writeJSON's headers.
func writeRaw(w http.ResponseWriter, status int, body []byte) {
	writeJSONHeader(w, status)
	_, _ = w.Write(append(bytes.TrimSpace(body), '\n'))
}

// writeJSONHeader writes the status and the headers of a JSON answer.
func writeJSONHeader(w http.ResponseWriter, status int) {
	hdr := w.Header()
	hdr.Set("Content-Type", "application/json")
	hdr.Set("Cache-Control", "no-store")
	hdr.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
}
