package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Where a tenant is defined.
const (
	SourceFile = "file" // the policy file: read-only in the API
	SourceAPI  = "api"  // the store, through this API
)

// MaxEntryBytes bounds a tenant entry sent to the API.
const MaxEntryBytes = 1 << 20

// TenantEntry is a tenant as defined: by the policy file (Source "file",
// File names it) or through the API (Source "api", Entry is the entry as
// stored, Version its store version).
type TenantEntry struct {
	ID      string          `json:"id"`
	Source  string          `json:"source"`
	File    string          `json:"file,omitempty"`
	Entry   json.RawMessage `json:"entry,omitempty"`
	Version int64           `json:"version,omitempty"`
	Created time.Time       `json:"created,omitzero"`
	Updated time.Time       `json:"updated,omitzero"`
	// Problem says why an API tenant is not served: shadowed (the file
	// defines its id) or no longer valid against the file (its plan left).
	Problem string `json:"problem,omitempty"`
	// Shadowed is the API tenant a file tenant shadows (Get of a file
	// tenant only).
	Shadowed *TenantEntry `json:"shadowed,omitempty"`
}

// TenantEntryQuery selects a page of tenants: ids starting with Prefix,
// of Source ("" both: the file's first), after Cursor.
type TenantEntryQuery struct {
	Prefix, Source, Cursor string
	Limit                  int
}

// TenantEntries manages the tenants of the API. An entry is JSON (or
// YAML) in the shape of a tenant entry of the policy file, decoded by the
// file's decoder: *InvalidEntryError lists every problem. A file tenant is
// ErrConflict for Create, Update and Delete (naming the file).
type TenantEntries interface {
	Create(ctx context.Context, entry []byte) (TenantEntry, error)
	Update(ctx context.Context, id string, entry []byte) (TenantEntry, error)
	// Delete removes the tenant and revokes its tokens.
	Delete(ctx context.Context, id string) error
	Get(ctx context.Context, id string) (TenantEntry, error)
	// List returns a page and the cursor of the next ("" at the end).
	List(ctx context.Context, q TenantEntryQuery) ([]TenantEntry, string, error)
}

// InvalidEntryError is a tenant entry with problems, each naming its key.
type InvalidEntryError struct{ Problems []string }

func (e *InvalidEntryError) Error() string {
	return fmt.Sprintf("%d problem(s):\n  %s", len(e.Problems), strings.Join(e.Problems, "\n  "))
}

// Created is the answer to a create: the entry and, when asked
// (?mint_token=true), the tenant's first token, shown this once.
type Created struct {
	TenantEntry
	Token  *Minted `json:"token,omitempty"`
	AWSKey *Minted `json:"aws_key,omitempty"` // ?mint_aws_key=true
}

func (c Created) auditDetail() string {
	d := fmt.Sprintf("version %d", c.Version)
	if c.Token != nil {
		d += ", new key id " + c.Token.KeyID
	}
	return d
}

func (e TenantEntry) auditDetail() string { return fmt.Sprintf("version %d", e.Version) }

func (h *Handler) tenantEntryRoutes(m *http.ServeMux) {
	t := h.callTimeout
	m.Handle("POST /v1/tenants", h.action("tenant.create", t, h.createTenant))
	m.Handle("PUT /v1/tenants/{id}", h.action("tenant.update", t, h.updateTenant))
	m.Handle("DELETE /v1/tenants/{id}", h.action("tenant.delete", t, h.deleteTenant))
	m.Handle("GET /v1/tenants/{id}/entry", h.read(h.getTenantEntry))
	m.Handle("GET /v1/tenant-entries", h.read(h.listTenantEntries))
}

// readEntry reads a tenant entry body: JSON or YAML, at most MaxEntryBytes.
func (h *Handler) readEntry(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != "application/json" && mt != "application/yaml" && mt != "application/x-yaml" && mt != "text/yaml") {
			return nil, &apiError{Status: http.StatusUnsupportedMediaType, Code: "unsupported_media_type", Message: "want Content-Type: application/json or application/yaml"}
		}
	}
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxEntryBytes))
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return nil, &apiError{Status: http.StatusRequestEntityTooLarge, Code: "too_large", Message: fmt.Sprintf("body over %d bytes", mbe.Limit)}
	}
	if err != nil {
		return nil, badRequest("reading the body: %v", err)
	}
	return data, nil
}

// entryError turns *InvalidEntryError into a 400 listing every problem.
func entryError(err error) error {
	var ie *InvalidEntryError
	if errors.As(err, &ie) {
		return &apiError{Status: http.StatusBadRequest, Code: "invalid_tenant",
			Message: fmt.Sprintf("the tenant entry has %d problem(s)", len(ie.Problems)), Problems: ie.Problems}
	}
	return err
}

func (h *Handler) createTenant(w http.ResponseWriter, r *http.Request, target *string) (int, any, error) {
	// mint_token and mint_aws_key mint the tenant's first token and AWS key
	// (the SES API's credential) with it, each shown this once.
	var mintTok, mintAWS bool
	for k, vs := range r.URL.Query() {
		var dst *bool
		switch k {
		case "mint_token":
			dst = &mintTok
		case "mint_aws_key":
			dst = &mintAWS
		default:
			return 0, nil, badRequest("unknown query parameter %q (want mint_token or mint_aws_key)", truncate(k, 40))
		}
		b, err := strconv.ParseBool(vs[0])
		if err != nil {
			return 0, nil, badRequest("%s: want true or false, got %q", k, truncate(vs[0], 20))
		}
		*dst = b
	}
	if mintAWS && h.awsKeys == nil {
		return 0, nil, fmt.Errorf("%w: mint_aws_key: AWS keys need the server key (--aws-key-secret-file)", ErrConflict)
	}
	data, err := h.readEntry(w, r)
	if err != nil {
		return 0, nil, err
	}
	e, err := h.entries.Create(r.Context(), data)
	if err != nil {
		return 0, nil, entryError(err)
	}
	*target = e.ID
	out := Created{TenantEntry: e}
	if mintTok {
		m, err := h.mint(r.Context(), e.ID, "")
		if err != nil {
			return 0, nil, fmt.Errorf("tenant %q created, its token not minted (POST /v1/tokens): %w", e.ID, err)
		}
		out.Token = &m
	}
	if mintAWS {
		m, err := h.mint(r.Context(), e.ID, KindAWS)
		if err != nil {
			return 0, nil, fmt.Errorf("tenant %q created, its AWS key not minted (POST /v1/tokens): %w", e.ID, err)
		}
		out.AWSKey = &m
	}
	return http.StatusCreated, out, nil
}

func (h *Handler) updateTenant(w http.ResponseWriter, r *http.Request, target *string) (int, any, error) {
	id, err := tenantID(r, "id")
	*target = truncate(id, 70)
	if err != nil {
		return 0, nil, err
	}
	data, err := h.readEntry(w, r)
	if err != nil {
		return 0, nil, err
	}
	e, err := h.entries.Update(r.Context(), id, data)
	if err != nil {
		return 0, nil, entryError(err)
	}
	return http.StatusOK, e, nil
}

func (h *Handler) deleteTenant(w http.ResponseWriter, r *http.Request, target *string) (int, any, error) {
	id, err := tenantID(r, "id")
	*target = truncate(id, 70)
	if err != nil {
		return 0, nil, err
	}
	if err := h.entries.Delete(r.Context(), id); err != nil {
		return 0, nil, err
	}
	return http.StatusOK, map[string]string{"deleted": id}, nil
}

func (h *Handler) getTenantEntry(r *http.Request) (any, error) {
	id, err := tenantID(r, "id")
	if err != nil {
		return nil, err
	}
	return h.entries.Get(r.Context(), id)
}

// TenantEntryPage is the answer to a list.
type TenantEntryPage struct {
	Tenants []TenantEntry `json:"tenants"`
	Next    string        `json:"next,omitempty"`
}

func (h *Handler) listTenantEntries(r *http.Request) (any, error) {
	q := TenantEntryQuery{}
	for k, vs := range r.URL.Query() {
		v := vs[0]
		switch k {
		case "prefix":
			if v != "" && !tenantIDRE.MatchString(v) {
				return nil, badRequest("prefix: want the start of a tenant id, got %q", truncate(v, 70))
			}
			q.Prefix = v
		case "source":
			if v != "" && v != SourceFile && v != SourceAPI {
				return nil, badRequest("source: want file or api, got %q", truncate(v, 20))
			}
			q.Source = v
		case "cursor":
			q.Cursor = v
		case "limit":
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > MaxListLimit {
				return nil, badRequest("limit: want 1 to %d, got %q", MaxListLimit, truncate(v, 20))
			}
			q.Limit = n
		default:
			return nil, badRequest("unknown query parameter %q (want prefix, source, cursor, limit)", truncate(k, 40))
		}
	}
	list, next, err := h.entries.List(r.Context(), q)
	if err != nil {
		return nil, err
	}
	if list == nil {
		list = []TenantEntry{}
	}
	return TenantEntryPage{Tenants: list, Next: next}, nil
}
