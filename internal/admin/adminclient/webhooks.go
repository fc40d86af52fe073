package adminclient

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"text/tabwriter"

	"github.com/sesgate/sesgate/internal/admin"
)

// DeadWebhooks lists dead-lettered app webhook events, newest first (of
// one tenant when tenant is not "").
func (c *Client) DeadWebhooks(ctx context.Context, tenant string, limit int) ([]admin.DeadWebhook, error) {
	q := url.Values{}
	if tenant != "" {
		q.Set("tenant", tenant)
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	var out struct{ Dead []admin.DeadWebhook }
	_, err := c.call(ctx, http.MethodGet, "/v1/webhooks/dead", q, nil, &out)
	return out.Dead, err
}

// ReplayWebhook puts a dead-lettered event back in its queue.
func (c *Client) ReplayWebhook(ctx context.Context, id string) error {
	_, err := c.call(ctx, http.MethodPost, "/v1/webhooks/dead/"+esc(id)+"/replay", nil, nil, nil)
	return err
}

func (r *runner) webhooksDead(ctx context.Context, args []string) error {
	fs := r.flags("webhooks dead")
	tenant := fs.String("tenant", "", "only this tenant's events")
	limit := fs.Int("limit", 100, "entries (at most 1000)")
	_, cl, err := r.start(fs, args, 0, "")
	if err != nil {
		return err
	}
	list, err := cl.DeadWebhooks(ctx, *tenant, *limit)
	if err != nil {
		return err
	}
	return r.out(map[string]any{"dead": list}, func(w *tabwriter.Writer) {
		fmt.Fprintln(w, "ID\tTENANT\tTYPE\tDIED\tATTEMPTS\tLAST ERROR")
		for _, d := range list {
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%d\t%s\n", d.ID, d.Tenant, d.Type, ts(d.Died), d.Attempts, d.LastError)
		}
	})
}

func (r *runner) webhooksReplay(ctx context.Context, args []string) error {
	pos, cl, err := r.start(r.flags("webhooks replay"), args, 1, "an event id")
	if err != nil {
		return err
	}
	if err := cl.ReplayWebhook(ctx, pos[0]); err != nil {
		return err
	}
	fmt.Fprintf(r.stdout, "replayed %s\n", pos[0])
	return nil
}

// WebhookHealth reads the apps' webhook health of every tenant, or of one
// when tenant is not "".
func (c *Client) WebhookHealth(ctx context.Context, tenant string) (admin.WebhookHealthReport, error) {
	q := url.Values{}
	if tenant != "" {
		q.Set("tenant", tenant)
	}
	var out admin.WebhookHealthReport
	_, err := c.call(ctx, http.MethodGet, "/v1/webhooks/health", q, nil, &out)
	return out, err
}

func (r *runner) webhooksHealth(ctx context.Context, args []string) error {
	fs := r.flags("webhooks health")
	tenant := fs.String("tenant", "", "only this tenant")
	_, cl, err := r.start(fs, args, 0, "")
	if err != nil {
		return err
	}
	rep, err := cl.WebhookHealth(ctx, *tenant)
	if err != nil {
		return err
	}
	return r.out(rep, func(w *tabwriter.Writer) {
		fmt.Fprintf(w, "TENANT\tWEBHOOK\tHEALTH\tBACKLOG\tOLDEST AGE\tDELIVERED %dH\tFAILED %dH\tDEAD %dH\tDEAD LETTERS\tLAST ERROR\n",
			rep.WindowHours, rep.WindowHours, rep.WindowHours)
		for _, t := range rep.Tenants {
			fmt.Fprintf(w, "%s\t*\t%s\t%d\t%ds\t%d\t%d\t%d\t%d\t\n", t.Tenant, t.Health, t.Backlog, t.OldestAgeSeconds,
				t.Delivered, t.Failed, t.Dead, t.DeadLetters)
			for _, e := range t.Webhooks {
				last := ""
				if e.LastFailed != nil {
					last = ts(*e.LastFailed) + " " + e.LastError
				}
				fmt.Fprintf(w, "\t%s\t%s\t\t\t%d\t%d\t%d\t\t%s\n", e.URL, e.Health, e.Delivered, e.Failed, e.Dead, last)
			}
		}
	})
}
