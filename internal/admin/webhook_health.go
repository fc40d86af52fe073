package admin

import (
	"context"
	"net/http"
	"time"

	"github.com/sesgate/sesgate/limiter/store"
)

// WebhookHealthReader reads the apps' webhook health from the store (both
// stores implement it): the fleet's figures, not one replica's.
type WebhookHealthReader interface {
	WebhookHealth(ctx context.Context, tenants []string, now time.Time) (map[string]store.WebhookHealth, error)
}

// Webhook health states (WebhookHealth.Health, EndpointHealth.Health).
const (
	HealthNone    = "none"    // nothing queued, no outcome kept
	HealthOK      = "ok"      // last outcome a delivery, nothing queued
	HealthBacklog = "backlog" // events queued, no webhook failing
	HealthFailing = "failing" // a webhook's last attempt failed
)

// WebhookHealthReport is the answer of GET /v1/webhooks/health.
type WebhookHealthReport struct {
	// WindowHours is the window of the *_24h counts: the current UTC hour
	// and the ones before it.
	WindowHours int             `json:"window_hours"`
	Tenants     []WebhookHealth `json:"tenants"`
}

// WebhookHealth is one tenant's webhook health.
type WebhookHealth struct {
	Tenant string `json:"tenant"`
	Health string `json:"health"`
	// Backlog is the events queued for delivery (all its webhooks);
	// Oldest the enqueue time of the oldest, OldestAgeSeconds its age.
	Backlog          int64      `json:"backlog"`
	Oldest           *time.Time `json:"oldest,omitempty"`
	OldestAgeSeconds int64      `json:"oldest_age_seconds"`
	// DeadLetters are the tenant's entries in the dead-letter list now.
	DeadLetters int64            `json:"dead_letters"`
	Delivered   int64            `json:"delivered_24h"`
	Failed      int64            `json:"failed_24h"`
	Dead        int64            `json:"dead_24h"`
	Webhooks    []EndpointHealth `json:"webhooks"`
}

// EndpointHealth is one webhook's health.
type EndpointHealth struct {
	URL           string     `json:"url"`
	Health        string     `json:"health"` // ok or failing
	Delivered     int64      `json:"delivered_24h"`
	Failed        int64      `json:"failed_24h"` // attempts that failed and will be retried
	Dead          int64      `json:"dead_24h"`   // events dead-lettered
	LastDelivered *time.Time `json:"last_delivered,omitempty"`
	LastFailed    *time.Time `json:"last_failed,omitempty"`
	LastError     string     `json:"last_error,omitempty"`
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// webhookHealth answers GET /v1/webhooks/health[?tenant=ID]: every
// configured tenant, or one (404 when unknown).
func (h *Handler) webhookHealth(r *http.Request) (any, error) {
	var ids []string
	if id := r.URL.Query().Get("tenant"); id != "" {
		if !tenantIDRE.MatchString(id) {
			return nil, badRequest("tenant: want a tenant id, got %q", truncate(id, 70))
		}
		if _, err := h.tenants.Status(r.Context(), id); err != nil {
			return nil, err
		}
		ids = []string{id}
	} else {
		list, err := h.tenants.List(r.Context())
		if err != nil {
			return nil, err
		}
		for _, t := range list {
			ids = append(ids, t.ID)
		}
	}
	now := h.now()
	figures, err := h.health.WebhookHealth(r.Context(), ids, now)
	if err != nil {
		return nil, err
	}
	out := WebhookHealthReport{WindowHours: store.WebhookHealthHours, Tenants: make([]WebhookHealth, 0, len(ids))}
	for _, id := range ids {
		f := figures[id]
		wh := WebhookHealth{Tenant: id, Health: HealthNone, Backlog: f.Backlog, Oldest: timePtr(f.Oldest),
			DeadLetters: f.Dead, Webhooks: make([]EndpointHealth, 0, len(f.Webhooks))}
		if !f.Oldest.IsZero() {
			wh.OldestAgeSeconds = max(int64(now.Sub(f.Oldest)/time.Second), 0)
		}
		failing := false
		for _, e := range f.Webhooks {
			eh := EndpointHealth{URL: e.Endpoint, Health: HealthOK, Delivered: e.Delivered, Failed: e.Failed, Dead: e.Dead,
				LastDelivered: timePtr(e.LastDelivered), LastFailed: timePtr(e.LastFailed), LastError: e.LastError}
			if e.Failing() {
				eh.Health, failing = HealthFailing, true
			}
			wh.Delivered += e.Delivered
			wh.Failed += e.Failed
			wh.Dead += e.Dead
			wh.Webhooks = append(wh.Webhooks, eh)
		}
		switch {
		case failing:
			wh.Health = HealthFailing
		case f.Backlog > 0:
			wh.Health = HealthBacklog
		case len(f.Webhooks) > 0:
			wh.Health = HealthOK
		}
		out.Tenants = append(out.Tenants, wh)
	}
	return out, nil
}
