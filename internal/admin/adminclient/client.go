// Package adminclient is the client of the admin API (package admin) and
// the `sesgate admin` command line built on it.
//
// The CLI takes its server from --addr or SESGATE_ADMIN_ADDR (default
// http://127.0.0.1:8026) and its token from --token or SESGATE_ADMIN_TOKEN;
// prefer the environment, since a flag shows in the process list. It prints
// tables for people and, with --json, the API's JSON for machines. A minted
// token is printed once, alone on stdout.
//
// Invariants: the token is sent only in the Authorization header and is never
// printed (except a newly minted one); every request has a timeout; answers
// are read with a size bound.
package adminclient

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/sesgate/sesgate/internal/admin"
)

// DefaultAddr is the admin listener's default.
const DefaultAddr = "http://127.0.0.1:8026"

// maxAnswer bounds a JSON answer.
const maxAnswer = 64 << 20

// Client calls the admin API.
type Client struct {
	base          *url.URL
	token         string
	http          *http.Client
	timeout, bulk time.Duration
}

// Options configure a Client.
type Options struct {
	Addr  string // base URL, default DefaultAddr
	Token string // admin token
	// Timeout bounds one call (default 30 s); imports and exports get
	// BulkTimeout (default 10 min).
	Timeout     time.Duration
	BulkTimeout time.Duration
	HTTPClient  *http.Client // default: a client without redirects
}

// New builds a Client.
func New(opts Options) (*Client, error) {
	if opts.Addr == "" {
		opts.Addr = DefaultAddr
	}
	if !strings.Contains(opts.Addr, "://") { // host:port, as serve's SESGATE_ADMIN_ADDR
		opts.Addr = "http://" + opts.Addr
	}
	u, err := url.Parse(opts.Addr)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("admin address %q: want http(s)://host:port", opts.Addr)
	}
	if opts.Token == "" {
		return nil, errors.New("no admin token: set SESGATE_ADMIN_TOKEN or --token")
	}
	hc := opts.HTTPClient
	if hc == nil {
		hc = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 30 * time.Second
	}
	if opts.BulkTimeout <= 0 {
		opts.BulkTimeout = 10 * time.Minute
	}
	return &Client{base: u, token: opts.Token, http: hc, timeout: opts.Timeout, bulk: opts.BulkTimeout}, nil
}

// APIError is an error answer of the API.
type APIError struct {
	Status  int
	Code    string
	Message string
	Lines   []admin.LineError
	// Problems of a refused tenant entry.
	Problems []string
}

func (e *APIError) Error() string {
	return fmt.Sprintf("%s (HTTP %d): %s", e.Code, e.Status, e.Message)
}

// request sends one call; body is JSON-encoded unless it is an io.Reader.
func (c *Client) request(ctx context.Context, method, path string, q url.Values, body any, contentType string) (*http.Response, error) {
	u := *c.base
	u.Path = strings.TrimSuffix(u.Path, "/") + path
	u.RawQuery = q.Encode()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case io.Reader:
		rd = b
	default:
		buf, err := json.Marshal(b)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(buf)
		contentType = "application/json"
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), rd)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Accept", "application/json")
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode >= 300 {
		defer resp.Body.Close()
		return nil, readError(resp)
	}
	return resp, nil
}

func readError(resp *http.Response) error {
	var e struct {
		Error struct {
			Code     string            `json:"code"`
			Message  string            `json:"message"`
			Lines    []admin.LineError `json:"lines"`
			Problems []string          `json:"problems"`
		} `json:"error"`
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err := json.Unmarshal(b, &e); err != nil || e.Error.Code == "" {
		return &APIError{Status: resp.StatusCode, Code: "http_error", Message: strings.TrimSpace(string(b[:min(len(b), 200)]))}
	}
	return &APIError{Status: resp.StatusCode, Code: e.Error.Code, Message: e.Error.Message, Lines: e.Error.Lines, Problems: e.Error.Problems}
}

// call sends one JSON call and decodes the answer into out (when not nil),
// returning the raw answer too.
func (c *Client) call(ctx context.Context, method, path string, q url.Values, body, out any) (json.RawMessage, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	resp, err := c.request(ctx, method, path, q, body, "")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return nil, err
	}
	return raw, decodeAnswer(bytes.NewReader(raw), out)
}

// decodeAnswer decodes a JSON answer into out (nil: none).
func decodeAnswer(body io.Reader, out any) error {
	if out == nil {
		return nil
	}
	raw, err := io.ReadAll(io.LimitReader(body, maxAnswer))
	if err != nil {
		return err
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return fmt.Errorf("decoding the answer: %w", err)
	}
	return nil
}

func esc(s string) string { return url.PathEscape(s) }

// Tokens lists token records (of one tenant when tenant is not "").
func (c *Client) Tokens(ctx context.Context, tenant string) ([]admin.TokenInfo, error) {
	q := url.Values{}
	if tenant != "" {
		q.Set("tenant", tenant)
	}
	var out struct{ Tokens []admin.TokenInfo }
	_, err := c.call(ctx, http.MethodGet, "/v1/tokens", q, nil, &out)
	return out.Tokens, err
}

// Mint mints a token for tenant.
func (c *Client) Mint(ctx context.Context, tenant string) (admin.Minted, error) {
	var m admin.Minted
	_, err := c.call(ctx, http.MethodPost, "/v1/tokens", nil, map[string]string{"tenant": tenant}, &m)
	return m, err
}

// Revoke revokes a token by key id.
func (c *Client) Revoke(ctx context.Context, keyID string) (admin.TokenInfo, error) {
	var t admin.TokenInfo
	_, err := c.call(ctx, http.MethodPost, "/v1/tokens/"+esc(keyID)+"/revoke", nil, nil, &t)
	return t, err
}

// Rotate mints a successor of keyID; the old token stays valid for grace.
func (c *Client) Rotate(ctx context.Context, keyID string, grace time.Duration) (admin.Minted, error) {
	var m admin.Minted
	_, err := c.call(ctx, http.MethodPost, "/v1/tokens/"+esc(keyID)+"/rotate", nil, map[string]string{"grace": grace.String()}, &m)
	return m, err
}

// TenantList is the answer of GET /v1/tenants.
type TenantList struct {
	GlobalFreeze admin.Freeze         `json:"global_freeze"`
	Tenants      []admin.TenantStatus `json:"tenants"`
}

// Tenants lists every tenant and the global kill switch.
func (c *Client) Tenants(ctx context.Context) (TenantList, error) {
	var l TenantList
	_, err := c.call(ctx, http.MethodGet, "/v1/tenants", nil, nil, &l)
	return l, err
}

// Tenant returns one tenant's status.
func (c *Client) Tenant(ctx context.Context, id string) (admin.TenantStatus, error) {
	var t admin.TenantStatus
	_, err := c.call(ctx, http.MethodGet, "/v1/tenants/"+esc(id), nil, nil, &t)
	return t, err
}

// SetFrozen freezes (with reason) or unfreezes tenant id; id "" is the
// global switch.
func (c *Client) SetFrozen(ctx context.Context, id string, frozen bool, reason string) (admin.FreezeResult, error) {
	path, verb := "/v1/", "unfreeze"
	if frozen {
		verb = "freeze"
	}
	if id != "" {
		path = "/v1/tenants/" + esc(id) + "/"
	}
	var body any
	if reason != "" {
		body = map[string]string{"reason": reason}
	}
	var r admin.FreezeResult
	_, err := c.call(ctx, http.MethodPost, path+verb, nil, body, &r)
	return r, err
}

// Breaker returns a tenant's breaker.
func (c *Client) Breaker(ctx context.Context, tenant string) (admin.BreakerStatus, error) {
	var b admin.BreakerStatus
	_, err := c.call(ctx, http.MethodGet, "/v1/breakers/"+esc(tenant), nil, nil, &b)
	return b, err
}

// ResetBreaker closes a tenant's breaker.
func (c *Client) ResetBreaker(ctx context.Context, tenant string) (admin.BreakerStatus, error) {
	var b admin.BreakerStatus
	_, err := c.call(ctx, http.MethodPost, "/v1/breakers/"+esc(tenant)+"/reset", nil, nil, &b)
	return b, err
}

// ForceOpen opens a tenant's breaker until a reset.
func (c *Client) ForceOpen(ctx context.Context, tenant, reason string) (admin.BreakerStatus, error) {
	var body any
	if reason != "" {
		body = map[string]string{"reason": reason}
	}
	var b admin.BreakerStatus
	_, err := c.call(ctx, http.MethodPost, "/v1/breakers/"+esc(tenant)+"/force-open", nil, body, &b)
	return b, err
}

// AddSuppression adds one address.
func (c *Client) AddSuppression(ctx context.Context, s admin.Suppression) (admin.Suppression, error) {
	var out admin.Suppression
	_, err := c.call(ctx, http.MethodPost, "/v1/suppressions", nil, s, &out)
	return out, err
}

// RemoveSuppression removes one address from tenant's list ("" global).
func (c *Client) RemoveSuppression(ctx context.Context, tenant, address string) error {
	_, err := c.call(ctx, http.MethodDelete, "/v1/suppressions", url.Values{"tenant": {tenant}, "address": {address}}, nil, nil)
	return err
}

// SuppressionPage is one page of a listing.
type SuppressionPage struct {
	Suppressions []admin.Suppression `json:"suppressions"`
	NextCursor   string              `json:"next_cursor"`
}

// ListQuery selects suppressions; AllLists true lists every list, else
// Tenant's ("" global).
type ListQuery struct {
	AllLists bool
	Tenant   string
	Prefix   string
	Cursor   string
	Limit    int
}

func (q ListQuery) values() url.Values {
	v := url.Values{}
	if !q.AllLists {
		v.Set("tenant", q.Tenant)
	}
	if q.Prefix != "" {
		v.Set("prefix", q.Prefix)
	}
	if q.Cursor != "" {
		v.Set("cursor", q.Cursor)
	}
	if q.Limit > 0 {
		v.Set("limit", fmt.Sprint(q.Limit))
	}
	return v
}

// Suppressions returns one page.
func (c *Client) Suppressions(ctx context.Context, q ListQuery) (SuppressionPage, error) {
	var p SuppressionPage
	_, err := c.call(ctx, http.MethodGet, "/v1/suppressions", q.values(), nil, &p)
	return p, err
}

// Import sends a CSV; mode is admin.ImportAll or admin.ImportValid. Broken
// lines in mode all come back as an *APIError with Lines.
func (c *Client) Import(ctx context.Context, csv io.Reader, mode string) (admin.ImportResult, error) {
	ctx, cancel := context.WithTimeout(ctx, c.bulk)
	defer cancel()
	resp, err := c.request(ctx, http.MethodPost, "/v1/suppressions/import", url.Values{"mode": {mode}}, csv, "text/csv")
	if err != nil {
		return admin.ImportResult{}, err
	}
	defer resp.Body.Close()
	var r admin.ImportResult
	err = json.NewDecoder(io.LimitReader(resp.Body, maxAnswer)).Decode(&r)
	return r, err
}

// Export streams the CSV of the selected lists to w.
func (c *Client) Export(ctx context.Context, q ListQuery, w io.Writer) error {
	ctx, cancel := context.WithTimeout(ctx, c.bulk)
	defer cancel()
	v := q.values()
	v.Del("limit")
	v.Del("cursor")
	resp, err := c.request(ctx, http.MethodGet, "/v1/suppressions/export", v, nil, "")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, err = io.Copy(w, resp.Body)
	return err
}

// Audit returns the newest limit audit entries.
func (c *Client) Audit(ctx context.Context, limit int) ([]admin.AuditEntry, error) {
	var out struct{ Entries []admin.AuditEntry }
	_, err := c.call(ctx, http.MethodGet, "/v1/audit", url.Values{"limit": {fmt.Sprint(limit)}}, nil, &out)
	return out.Entries, err
}
