package adminclient

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/sesgate/sesgate/internal/admin"
)

// --- client: the tenants of the API ---

// CreateTenant creates a tenant from its entry (JSON or YAML, the shape of
// a tenant entry of the policy file); mint also mints its first token.
func (c *Client) CreateTenant(ctx context.Context, entry []byte, yaml, mint bool) (admin.Created, error) {
	q := url.Values{}
	if mint {
		q.Set("mint_token", "true")
	}
	var out admin.Created
	return out, c.send(ctx, "POST", "/v1/tenants", q, entry, yaml, &out)
}

// UpdateTenant replaces the entry of API tenant id.
func (c *Client) UpdateTenant(ctx context.Context, id string, entry []byte, yaml bool) (admin.TenantEntry, error) {
	var out admin.TenantEntry
	return out, c.send(ctx, "PUT", "/v1/tenants/"+esc(id), nil, entry, yaml, &out)
}

// DeleteTenant deletes API tenant id (its tokens are revoked).
func (c *Client) DeleteTenant(ctx context.Context, id string) error {
	_, err := c.call(ctx, "DELETE", "/v1/tenants/"+esc(id), nil, nil, nil)
	return err
}

// TenantEntry returns how tenant id is defined.
func (c *Client) TenantEntry(ctx context.Context, id string) (admin.TenantEntry, error) {
	var out admin.TenantEntry
	_, err := c.call(ctx, "GET", "/v1/tenants/"+esc(id)+"/entry", nil, nil, &out)
	return out, err
}

// TenantEntries returns a page of tenants (admin.TenantEntryQuery).
func (c *Client) TenantEntries(ctx context.Context, q admin.TenantEntryQuery) (admin.TenantEntryPage, error) {
	v := url.Values{}
	for k, s := range map[string]string{"prefix": q.Prefix, "source": q.Source, "cursor": q.Cursor} {
		if s != "" {
			v.Set(k, s)
		}
	}
	if q.Limit > 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	var out admin.TenantEntryPage
	_, err := c.call(ctx, "GET", "/v1/tenant-entries", v, nil, &out)
	return out, err
}

// send posts an entry as JSON or YAML (sent as written, so that problems
// name its lines) and decodes the answer.
func (c *Client) send(ctx context.Context, method, path string, q url.Values, entry []byte, yaml bool, out any) error {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	ct := "application/json"
	if yaml {
		ct = "application/yaml"
	}
	resp, err := c.request(ctx, method, path, q, bytes.NewReader(entry), ct)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	return decodeAnswer(resp.Body, out)
}

// --- commands: sesgate admin tenant ... (and sesgate tenant ...) ---

// readEntryFile reads -f FILE (- for stdin); YAML unless it ends in .json.
func (r *runner) readEntryFile(cmd, path string) ([]byte, bool, error) {
	if path == "" {
		return nil, false, usage(fmt.Errorf("%s: -f FILE is required (a tenant entry, JSON or YAML; - reads stdin)", cmd))
	}
	var rd io.Reader = r.stdin
	if path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return nil, false, err
		}
		defer f.Close()
		rd = f
	}
	data, err := io.ReadAll(io.LimitReader(rd, admin.MaxEntryBytes+1))
	if err != nil {
		return nil, false, err
	}
	if len(data) > admin.MaxEntryBytes {
		return nil, false, fmt.Errorf("%s: larger than %d bytes", path, admin.MaxEntryBytes)
	}
	return data, !strings.EqualFold(filepath.Ext(path), ".json"), nil
}

// entryProblems prints the problems of a refused entry on stderr.
func (r *runner) entryProblems(err error) error {
	var ae *APIError
	if errors.As(err, &ae) && len(ae.Problems) > 0 {
		for _, p := range ae.Problems {
			fmt.Fprintln(r.stderr, "  "+p)
		}
	}
	return err
}

func (r *runner) tenantCreate(ctx context.Context, args []string) error {
	fs := r.flags("tenant create")
	file := fs.String("f", "", "the tenant entry, JSON or YAML (- reads stdin)")
	mint := fs.Bool("mint-token", false, "also mint the tenant's first token (printed once, alone on stdout)")
	if _, err := parse(fs, args, 0, ""); err != nil {
		return err
	}
	data, yaml, err := r.readEntryFile("tenant create", *file)
	if err != nil {
		return err
	}
	cl, err := r.client()
	if err != nil {
		return err
	}
	c, err := cl.CreateTenant(ctx, data, yaml, *mint)
	if err != nil {
		return r.entryProblems(err)
	}
	if r.json {
		return r.out(c, nil)
	}
	fmt.Fprintf(r.stderr, "tenant %s created (version %d)\n", c.ID, c.Version)
	if c.Token != nil {
		return r.minted(*c.Token)
	}
	return nil
}

func (r *runner) tenantUpdate(ctx context.Context, args []string) error {
	fs := r.flags("tenant update")
	file := fs.String("f", "", "the whole new tenant entry, JSON or YAML (- reads stdin)")
	pos, err := parse(fs, args, 1, "ID")
	if err != nil {
		return err
	}
	data, yaml, err := r.readEntryFile("tenant update", *file)
	if err != nil {
		return err
	}
	cl, err := r.client()
	if err != nil {
		return err
	}
	e, err := cl.UpdateTenant(ctx, pos[0], data, yaml)
	if err != nil {
		return r.entryProblems(err)
	}
	if r.json {
		return r.out(e, nil)
	}
	fmt.Fprintf(r.stderr, "tenant %s updated (version %d)\n", e.ID, e.Version)
	return nil
}

func (r *runner) tenantDelete(ctx context.Context, args []string) error {
	pos, cl, err := r.start(r.flags("tenant delete"), args, 1, "ID")
	if err != nil {
		return err
	}
	if err := cl.DeleteTenant(ctx, pos[0]); err != nil {
		return err
	}
	fmt.Fprintf(r.stderr, "tenant %s deleted; its tokens are revoked\n", pos[0])
	return nil
}

func (r *runner) tenantGet(ctx context.Context, args []string) error {
	pos, cl, err := r.start(r.flags("tenant get"), args, 1, "ID")
	if err != nil {
		return err
	}
	e, err := cl.TenantEntry(ctx, pos[0])
	if err != nil {
		return err
	}
	if r.json || e.Source == admin.SourceAPI {
		return r.out(e, nil)
	}
	fmt.Fprintf(r.stdout, "tenant %s is defined in %s (read-only here)\n", e.ID, e.File)
	if e.Shadowed != nil {
		fmt.Fprintf(r.stdout, "it shadows the API tenant of the same id (version %d), which is not served\n", e.Shadowed.Version)
	}
	return nil
}

func (r *runner) tenantList(ctx context.Context, args []string) error {
	fs := r.flags("tenant list")
	var q admin.TenantEntryQuery
	fs.StringVar(&q.Prefix, "prefix", "", "only ids starting with this")
	fs.StringVar(&q.Source, "source", "", "file or api (default both)")
	fs.StringVar(&q.Cursor, "cursor", "", "the next page (printed after a full page)")
	fs.IntVar(&q.Limit, "limit", 0, "tenants per page (default 100, at most 1000)")
	_, cl, err := r.start(fs, args, 0, "")
	if err != nil {
		return err
	}
	page, err := cl.TenantEntries(ctx, q)
	if err != nil {
		return err
	}
	return r.out(page, func(w *tabwriter.Writer) {
		fmt.Fprintln(w, "TENANT\tSOURCE\tVERSION\tUPDATED\tPROBLEM")
		for _, e := range page.Tenants {
			v := "-"
			if e.Source == admin.SourceAPI {
				v = strconv.FormatInt(e.Version, 10)
			}
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", e.ID, e.Source, v, ts(e.Updated), e.Problem)
		}
		if page.Next != "" {
			fmt.Fprintf(w, "\nnext page: --cursor %s\n", page.Next)
		}
	})
}
