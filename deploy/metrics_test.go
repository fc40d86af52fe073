package deploy

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/prometheus/promql/parser"

	"github.com/sesgate/sesgate/internal/redistest"
	"github.com/sesgate/sesgate/internal/server"
	"github.com/sesgate/sesgate/internal/sestest"
	"github.com/sesgate/sesgate/internal/sestest/sqstest"
)

// notGateway are series that come from elsewhere: Prometheus's own scrape
// health and kube-state-metrics.
var notGateway = []string{"up", "kube_pod_container_status_ready"}

// syncBuffer is a log sink the gateway writes while the test reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// registeredMetrics runs a whole gateway in-process with every part that
// registers metrics switched on (Redis, the SES sink, SNS and SQS event
// intake, the alert webhook, the account guard) and returns the metric
// names it logs as registered.
func registeredMetrics(t *testing.T) []string {
	t.Helper()
	rd := redistest.Start(t)
	_, sesURL, stopSES, err := sestest.Start(sestest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stopSES)
	q, err := sqstest.Start(sqstest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(q.Close)
	for k, v := range map[string]string{
		"AWS_ACCESS_KEY_ID": sestest.DefaultAccessKeyID, "AWS_SECRET_ACCESS_KEY": sestest.DefaultSecretAccessKey,
		"AWS_REGION": "us-east-1", "AWS_ENDPOINT_URL_SESV2": sesURL, "AWS_ENDPOINT_URL_SQS": q.URL(),
		"AWS_EC2_METADATA_DISABLED": "true", "SESGATE_REDIS_URL": "redis://" + rd.Addr,
		"SESGATE_RECIPIENT_KEY": "0123456789abcdef0123456789abcdef",
	} {
		t.Setenv(k, v)
	}
	dir := t.TempDir()
	policy := fmt.Sprintf(`ses: {region: us-east-1, max_send_rate: 14}
events:
  sns: {topic_arns: ["arn:aws:sns:us-east-1:123456789012:ses-events"]}
  sqs: {queue_url: %q}
alerts: {webhook_url: "http://127.0.0.1:9/alerts"}
account_guard: {enabled: true}
tenants:
  - id: billing
    identities: ["@billing.example.com"]
`, q.QueueURL("events"))
	path := filepath.Join(dir, "policy.yml")
	if err := os.WriteFile(path, []byte(policy), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := server.ParseSettings([]string{"--config=" + path, "--sink=ses", "--data-dir=" + filepath.Join(dir, "data"),
		"--smtp-addr=127.0.0.1:0", "--http-addr=127.0.0.1:0", "--admin-addr=127.0.0.1:0", "--shutdown-timeout=5s"}, os.Stderr)
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	log := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- server.Run(ctx, server.Options{Settings: s, Logger: log}) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("gateway: %v", err)
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		for _, line := range strings.Split(logs.String(), "\n") {
			var rec struct {
				Msg   string   `json:"msg"`
				Names []string `json:"names"`
			}
			if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "metrics registered" {
				return rec.Names
			}
		}
		select {
		case err := <-done:
			t.Fatalf("gateway stopped: %v\n%s", err, logs.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
	t.Fatalf("no \"metrics registered\" line:\n%s", logs.String())
	return nil
}

// grafanaVar matches the dashboard's variables and Grafana's own.
var grafanaVar = regexp.MustCompile(`\$\{?(__rate_interval|__interval|__range|tenant|datasource)\}?`)

// exprNames parses a PromQL expression and returns the metric names it
// selects.
func exprNames(t *testing.T, where, expr string) []string {
	t.Helper()
	e, err := promParser.ParseExpr(grafanaVar.ReplaceAllStringFunc(expr, func(v string) string {
		if strings.Contains(v, "__") {
			return "5m"
		}
		return "x"
	}))
	if err != nil {
		t.Errorf("%s: %q: %v", where, expr, err)
		return nil
	}
	var out []string
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		if vs, ok := n.(*parser.VectorSelector); ok {
			if vs.Name == "" {
				t.Errorf("%s: %q selects without a metric name", where, expr)
			}
			out = append(out, vs.Name)
		}
		return nil
	})
	return out
}

// dashboard is the part of Grafana's dashboard model the tests read.
type dashboard struct {
	UID        string `json:"uid"`
	Title      string `json:"title"`
	Templating struct {
		List []struct {
			Name       string          `json:"name"`
			Type       string          `json:"type"`
			Query      json.RawMessage `json:"query"`
			Datasource *datasourceRef  `json:"datasource"`
			IncludeAll bool            `json:"includeAll"`
			Multi      bool            `json:"multi"`
		} `json:"list"`
	} `json:"templating"`
	Panels []struct {
		ID         int            `json:"id"`
		Type       string         `json:"type"`
		Title      string         `json:"title"`
		Datasource *datasourceRef `json:"datasource"`
		GridPos    struct{ H, W, X, Y int }
		Targets    []struct {
			Expr       string         `json:"expr"`
			Datasource *datasourceRef `json:"datasource"`
		} `json:"targets"`
	} `json:"panels"`
}

type datasourceRef struct{ Type, UID string }

func loadDashboard(t *testing.T) *dashboard {
	t.Helper()
	b, err := os.ReadFile("monitoring/sesgate-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatal(err)
	}
	return &d
}

// TestDashboard checks the Grafana dashboard: importable anywhere (the
// datasource a variable, no fixed datasource uid), a tenant variable, every
// query valid PromQL, panels not overlapping, and a panel for each topic.
func TestDashboard(t *testing.T) {
	d := loadDashboard(t)
	if d.UID == "" || d.Title == "" {
		t.Error("the dashboard needs a uid and a title")
	}
	vars := map[string]string{}
	for _, v := range d.Templating.List {
		vars[v.Name] = v.Type
		if v.Name == "tenant" && (!v.IncludeAll || !v.Multi || v.Datasource == nil || v.Datasource.UID != "${datasource}") {
			t.Error("the tenant variable must be multi-valued with All, queried through ${datasource}")
		}
	}
	if vars["datasource"] != "datasource" || vars["tenant"] != "query" {
		t.Errorf("variables %v: want datasource (a datasource variable) and tenant", vars)
	}
	ids := map[int]bool{}
	used := map[string]bool{}
	type cell struct{ x, y int }
	taken := map[cell]string{}
	for _, p := range d.Panels {
		if ids[p.ID] {
			t.Errorf("panel id %d twice", p.ID)
		}
		ids[p.ID] = true
		if p.GridPos.X+p.GridPos.W > 24 || p.GridPos.W <= 0 || p.GridPos.H <= 0 {
			t.Errorf("panel %q: grid %+v", p.Title, p.GridPos)
		}
		for x := p.GridPos.X; x < p.GridPos.X+p.GridPos.W; x++ {
			for y := p.GridPos.Y; y < p.GridPos.Y+p.GridPos.H; y++ {
				if other, ok := taken[cell{x, y}]; ok {
					t.Fatalf("panels %q and %q overlap", other, p.Title)
				}
				taken[cell{x, y}] = p.Title
			}
		}
		if p.Type == "row" {
			continue
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		if p.Datasource == nil || p.Datasource.UID != "${datasource}" {
			t.Errorf("panel %q: datasource %+v, want ${datasource}", p.Title, p.Datasource)
		}
		for _, q := range p.Targets {
			if q.Datasource == nil || q.Datasource.UID != "${datasource}" {
				t.Errorf("panel %q: a query's datasource is not ${datasource}", p.Title)
			}
			for _, n := range exprNames(t, "panel "+p.Title, q.Expr) {
				used[n] = true
			}
		}
	}
	for _, topic := range []string{
		"sesgate_messages_accepted_total", "sesgate_messages_refused_total", "sesgate_ses_errors_total",
		"sesgate_ses_send_seconds_bucket", "sesgate_breaker_state", "sesgate_breaker_bounce_rate",
		"sesgate_breaker_complaint_rate", "sesgate_admission_degraded_total", "sesgate_redis_errors_total",
		"sesgate_webhook_backlog", "sesgate_webhook_oldest_age_seconds", "sesgate_webhook_deliveries_total",
		"sesgate_first_contact_window", "sesgate_first_contact_outstanding", "sesgate_first_contact_held_total",
	} {
		if !used[topic] {
			t.Errorf("no panel shows %s", topic)
		}
	}
}

// TestMonitoringUsesRegisteredMetrics: every metric the dashboard and the
// rules query is one the gateway registers (histogram series by their
// family), or an in-flight family, or not the gateway's (up,
// kube-state-metrics); and every family the gateway registers is on the
// dashboard.
func TestMonitoringUsesRegisteredMetrics(t *testing.T) {
	registered := registeredMetrics(t)
	if len(registered) < 15 {
		t.Fatalf("only %d metrics registered: %v", len(registered), registered)
	}
	known := func(n string) bool {
		if slices.Contains(registered, n) || slices.Contains(notGateway, n) {
			return true
		}
		for _, suffix := range []string{"_bucket", "_count", "_sum"} {
			if base, ok := strings.CutSuffix(n, suffix); ok && slices.Contains(registered, base) {
				return true
			}
		}
		return false
	}
	onDashboard := map[string]bool{}
	for _, p := range loadDashboard(t).Panels {
		for _, q := range p.Targets {
			for _, n := range exprNames(t, "panel "+p.Title, q.Expr) {
				if !known(n) {
					t.Errorf("dashboard panel %q queries %s, which the gateway does not register", p.Title, n)
				}
				onDashboard[strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(n, "_bucket"), "_count"), "_sum")] = true
			}
		}
	}
	for _, g := range parseRules(t, "monitoring/rules.yaml").Groups {
		for _, r := range g.Rules {
			for _, n := range exprNames(t, "alert "+r.Alert, r.Expr) {
				if !known(n) {
					t.Errorf("alert %s queries %s, which the gateway does not register", r.Alert, n)
				}
			}
		}
	}
	for _, n := range registered {
		if !onDashboard[n] {
			t.Errorf("the gateway registers %s, which no dashboard panel shows", n)
		}
	}
}
