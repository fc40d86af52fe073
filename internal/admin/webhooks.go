package admin

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"time"

	"github.com/sesgate/sesgate/limiter/store"
)

// Webhooks is the dead-letter list of the apps' webhooks (both stores
// implement it).
type Webhooks interface {
	ListDeadWebhooks(ctx context.Context, tenant string, limit int) ([]store.DeadWebhook, error)
	ReplayDeadWebhook(ctx context.Context, id string, now time.Time) (bool, error)
}

// DeadWebhook is one dead-lettered app webhook event as the API shows it.
type DeadWebhook struct {
	ID        string          `json:"id"`
	Tenant    string          `json:"tenant"`
	URL       string          `json:"url"`
	Type      string          `json:"type"`
	Enqueued  time.Time       `json:"enqueued"`
	Died      time.Time       `json:"died"`
	Attempts  int             `json:"attempts"`
	LastError string          `json:"last_error"`
	Payload   json.RawMessage `json:"payload"`
}

// Bounds of the dead-letter listing.
const (
	defaultDeadLimit = 100
	maxDeadLimit     = 1000
)

var webhookIDRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// webhookRoutes mounts the dead-letter routes when the store has them.
func (h *Handler) webhookRoutes(m *http.ServeMux) {
	if h.webhooks == nil {
		return
	}
	m.Handle("GET /v1/webhooks/dead", h.read(h.listDeadWebhooks))
	m.Handle("POST /v1/webhooks/dead/{id}/replay", h.action("webhook.replay", h.callTimeout, h.replayDeadWebhook))
	if hr, ok := h.webhooks.(WebhookHealthReader); ok {
		h.health = hr
		m.Handle("GET /v1/webhooks/health", h.read(h.webhookHealth))
	}
}

func (h *Handler) listDeadWebhooks(r *http.Request) (any, error) {
	q := r.URL.Query()
	tenant := q.Get("tenant")
	if tenant != "" && !tenantIDRE.MatchString(tenant) {
		return nil, badRequest("tenant: want a tenant id, got %q", truncate(tenant, 70))
	}
	limit := defaultDeadLimit
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxDeadLimit {
			return nil, badRequest("limit: want 1 to %d, got %q", maxDeadLimit, truncate(v, 20))
		}
		limit = n
	}
	list, err := h.webhooks.ListDeadWebhooks(r.Context(), tenant, limit)
	if err != nil {
		return nil, err
	}
	out := make([]DeadWebhook, 0, len(list))
	for _, d := range list {
		out = append(out, DeadWebhook{ID: d.ID, Tenant: d.Tenant, URL: d.Endpoint, Type: d.Type, Enqueued: d.Enqueued, Died: d.Died,
			Attempts: d.Attempts, LastError: d.LastError, Payload: json.RawMessage(d.Body)})
	}
	return map[string][]DeadWebhook{"dead": out}, nil
}

func (h *Handler) replayDeadWebhook(w http.ResponseWriter, r *http.Request, target *string) (int, any, error) {
	var req struct{}
	if err := h.decode(w, r, &req); err != nil {
		return 0, nil, err
	}
	id := r.PathValue("id")
	*target = truncate(id, 70)
	if !webhookIDRE.MatchString(id) {
		return 0, nil, badRequest("invalid webhook event id %q", truncate(id, 70))
	}
	ok, err := h.webhooks.ReplayDeadWebhook(r.Context(), id, h.now())
	if err != nil {
		return 0, nil, err
	}
	if !ok {
		return 0, nil, fmt.Errorf("%w: no dead webhook event %s", ErrNotFound, id)
	}
	return http.StatusOK, map[string]string{"replayed": id}, nil
}
