package guard

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sesgate/sesgate/limiter/store"
)

// Alert is one notification to the webhook. Text is what Slack shows.
type Alert struct {
	Text      string             `json:"text"`
	Tenant    string             `json:"tenant"`
	Event     string             `json:"event"` // trip, forced_open, half_open, closed, warning, warning_cleared, shed
	State     store.BreakerState `json:"state"`
	Reason    string             `json:"reason,omitempty"`
	OpenUntil time.Time          `json:"open_until,omitzero"`
	At        time.Time          `json:"at"`
}

// Defaults of AlerterOptions.
const (
	DefaultAlertQueue    = 256
	DefaultAlertAttempts = 6
	DefaultAlertBackoff  = 500 * time.Millisecond
	MaxAlertBackoff      = 30 * time.Second
	DefaultAlertTimeout  = 5 * time.Second
)

// AlerterOptions configure NewAlerter. URL is required.
type AlerterOptions struct {
	URL      string
	Queue    int           // pending alerts; beyond it they are dropped (counted)
	Attempts int           // per alert, 5xx, 429 and network errors retried
	Backoff  time.Duration // first retry delay, doubling up to MaxAlertBackoff
	Timeout  time.Duration // one POST
	Client   *http.Client
	Logger   *slog.Logger
	// Registerer gets sesgate_alerts_total{outcome}.
	Registerer prometheus.Registerer
}

// Alerter posts alerts as JSON to a webhook from one goroutine. Send never
// blocks.
type Alerter struct {
	url      string
	attempts int
	backoff  time.Duration
	client   *http.Client
	log      *slog.Logger
	queue    chan Alert
	stop     chan struct{}
	done     chan struct{}
	once     sync.Once
	count    *prometheus.CounterVec
}

// NewAlerter starts an Alerter; Close stops it.
func NewAlerter(opts AlerterOptions) (*Alerter, error) {
	if opts.URL == "" {
		return nil, errors.New("guard: AlerterOptions.URL is required")
	}
	a := &Alerter{url: opts.URL, attempts: opts.Attempts, backoff: opts.Backoff, client: opts.Client, log: opts.Logger,
		stop: make(chan struct{}), done: make(chan struct{})}
	if opts.Queue <= 0 {
		opts.Queue = DefaultAlertQueue
	}
	if a.attempts <= 0 {
		a.attempts = DefaultAlertAttempts
	}
	if a.backoff <= 0 {
		a.backoff = DefaultAlertBackoff
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultAlertTimeout
	}
	if a.client == nil {
		a.client = &http.Client{Timeout: opts.Timeout}
	}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	a.queue = make(chan Alert, opts.Queue)
	a.count = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sesgate_alerts_total", Help: "Alert webhook deliveries by outcome (sent, failed, dropped).",
	}, []string{"outcome"})
	if opts.Registerer != nil {
		if err := opts.Registerer.Register(a.count); err != nil {
			return nil, err
		}
	}
	go a.run()
	return a, nil
}

// Send queues al; when the queue is full it is dropped and counted.
func (a *Alerter) Send(al Alert) {
	select {
	case a.queue <- al:
	default:
		a.count.WithLabelValues("dropped").Inc()
		a.log.Warn("alert dropped: queue full", "tenant", al.Tenant, "event", al.Event)
	}
}

// Close stops the worker; alerts still queued are not sent.
func (a *Alerter) Close() {
	a.once.Do(func() { close(a.stop) })
	<-a.done
}

func (a *Alerter) run() {
	defer close(a.done)
	for {
		select {
		case <-a.stop:
			return
		case al := <-a.queue:
			a.deliver(al)
		}
	}
}

func (a *Alerter) deliver(al Alert) {
	body, _ := json.Marshal(al)
	wait := a.backoff
	for i := 1; ; i++ {
		err := a.post(body)
		if err == nil {
			a.count.WithLabelValues("sent").Inc()
			return
		}
		var perm permanent
		if i >= a.attempts || errors.As(err, &perm) {
			a.count.WithLabelValues("failed").Inc()
			a.log.Error("alert not delivered", "tenant", al.Tenant, "event", al.Event, "attempts", i, "err", err.Error())
			return
		}
		select {
		case <-a.stop:
			return
		case <-time.After(wait):
		}
		wait = min(2*wait, MaxAlertBackoff)
	}
}

type permanent struct{ status int }

func (p permanent) Error() string { return fmt.Sprintf("webhook answered %d", p.status) }

func (a *Alerter) post(body []byte) error {
	ctx, cancel := context.WithTimeout(context.Background(), a.client.Timeout+time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, a.url, bytes.NewReader(body))
	if err != nil {
		return permanent{}
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := a.client.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	switch {
	case resp.StatusCode/100 == 2:
		return nil
	case resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests:
		return fmt.Errorf("webhook answered %d", resp.StatusCode)
	}
	return permanent{status: resp.StatusCode}
}
