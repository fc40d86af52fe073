package adminclient

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/sesgate/sesgate/internal/admin"
)

// ErrUsage marks a command-line mistake (exit status 2).
var ErrUsage = errors.New("usage")

// Usage is the help of `sesgate admin`.
const Usage = `usage: sesgate admin [--addr URL] [--token T] [--json] <command>

  --addr URL   admin API (env SESGATE_ADMIN_ADDR, default http://127.0.0.1:8026)
  --token T    admin token (env SESGATE_ADMIN_TOKEN; prefer the env: flags show in ps)
  --json       print the API's JSON instead of tables

commands:
  tokens list [--tenant ID]              list sending tokens
  tokens mint --tenant ID                mint a token (printed once, alone on stdout)
  tokens revoke KEYID                    revoke a token now
  tokens rotate KEYID [--grace 1h]       mint a successor; the old one works until now+grace
  tenants list                           tenants: state, breaker, usage, rates
  tenants status ID                      one tenant: limits, usage, budget, rates
  tenants freeze ID [--reason R]         kill switch on for one tenant
  tenants unfreeze ID                    kill switch off
  freeze-all [--reason R]                freeze all sending
  unfreeze-all                           unfreeze all sending
  breaker list                           every tenant's breaker
  breaker status TENANT                  state, rates, windows, trips
  breaker reset TENANT                   close the breaker
  breaker force-open TENANT [--reason R] open it until a reset
  suppress add ADDR [--tenant ID] [--reason manual|hard-bounce|complaint]
  suppress remove ADDR [--tenant ID]     (no --tenant: the global list)
  suppress list [--tenant ID | --global] [--prefix P] [--limit N] [--cursor C]
  suppress import FILE|- [--mode all|valid]
  suppress export [--tenant ID | --global] > FILE
  audit [--limit N]                      newest admin actions first
`

type cli struct {
	ctx            context.Context
	stdin          io.Reader
	stdout, stderr io.Writer
	addr, token    string
	json           bool
}

// Run runs `sesgate admin` with args (after "admin"). getenv reads the
// environment (os.Getenv); stdin feeds `suppress import -`.
func Run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	c := &cli{ctx: ctx, stdin: stdin, stdout: stdout, stderr: stderr,
		addr: getenv("SESGATE_ADMIN_ADDR"), token: getenv("SESGATE_ADMIN_TOKEN")}
	fs := c.flags("sesgate admin")
	fs.Usage = func() { fmt.Fprint(stderr, Usage) }
	if err := fs.Parse(args); err != nil {
		return usage(err)
	}
	args = fs.Args()
	if len(args) == 0 {
		fmt.Fprint(stderr, Usage)
		return usage(errors.New("no command"))
	}
	cmd := args[0]
	if len(args) > 1 && !strings.HasPrefix(args[1], "-") {
		switch cmd {
		case "tokens", "tenants", "breaker", "suppress":
			cmd += " " + args[1]
			args = args[1:]
		}
	}
	if cmd == "help" {
		fmt.Fprint(stdout, Usage)
		return nil
	}
	return c.dispatch(cmd, args[1:])
}

func usage(err error) error {
	if errors.Is(err, flag.ErrHelp) {
		return err
	}
	return fmt.Errorf("%w: %v", ErrUsage, err)
}

func (c *cli) flags(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	fs.StringVar(&c.addr, "addr", c.addr, "admin API base URL")
	fs.StringVar(&c.token, "token", c.token, "admin token")
	fs.BoolVar(&c.json, "json", c.json, "print JSON")
	return fs
}

// parse parses flags anywhere among the arguments and checks that there
// are exactly npos positional ones.
func parse(fs *flag.FlagSet, args []string, npos int, what string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, usage(err)
		}
		if fs.NArg() == 0 {
			break
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
	if len(pos) != npos {
		return nil, usage(fmt.Errorf("%s: want %d argument(s) (%s), got %d", fs.Name(), npos, what, len(pos)))
	}
	return pos, nil
}

func (c *cli) client() (*Client, error) {
	return New(Options{Addr: c.addr, Token: c.token})
}

// out prints v as JSON with --json, else runs table.
func (c *cli) out(v any, table func(w *tabwriter.Writer)) error {
	if c.json {
		enc := json.NewEncoder(c.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	table(tw)
	return tw.Flush()
}

func (c *cli) dispatch(cmd string, args []string) error {
	fs := c.flags("sesgate admin " + cmd)
	var tenant, reason, prefix, cursor, mode string
	var global bool
	var limit int
	var grace time.Duration
	var pos []string
	var err error
	need := func(n int, what string) error {
		pos, err = parse(fs, args, n, what)
		return err
	}
	switch cmd {
	case "tokens list":
		fs.StringVar(&tenant, "tenant", "", "only this tenant's tokens")
		if err := need(0, ""); err != nil {
			return err
		}
	case "tokens mint":
		fs.StringVar(&tenant, "tenant", "", "tenant id (required)")
		if err := need(0, ""); err != nil {
			return err
		}
		if tenant == "" {
			return usage(errors.New("tokens mint: --tenant is required"))
		}
	case "tokens revoke", "tenants status", "tenants unfreeze", "breaker status", "breaker reset":
		if err := need(1, "an id"); err != nil {
			return err
		}
	case "tokens rotate":
		fs.DurationVar(&grace, "grace", time.Hour, "how long the old token keeps working")
		if err := need(1, "KEYID"); err != nil {
			return err
		}
	case "tenants freeze", "breaker force-open":
		fs.StringVar(&reason, "reason", "", "why (audited)")
		if err := need(1, "an id"); err != nil {
			return err
		}
	case "freeze-all":
		fs.StringVar(&reason, "reason", "", "why (audited)")
		if err := need(0, ""); err != nil {
			return err
		}
	case "tenants list", "unfreeze-all", "breaker list":
		if err := need(0, ""); err != nil {
			return err
		}
	case "suppress add":
		fs.StringVar(&tenant, "tenant", "", "tenant list (default: the global list)")
		fs.StringVar(&reason, "reason", admin.ReasonManual, "manual, hard-bounce or complaint")
		if err := need(1, "ADDR"); err != nil {
			return err
		}
	case "suppress remove":
		fs.StringVar(&tenant, "tenant", "", "tenant list (default: the global list)")
		if err := need(1, "ADDR"); err != nil {
			return err
		}
	case "suppress list", "suppress export":
		fs.StringVar(&tenant, "tenant", "", "only this tenant's list")
		fs.BoolVar(&global, "global", false, "only the global list")
		if cmd == "suppress list" {
			fs.StringVar(&prefix, "prefix", "", "addresses starting with this")
			fs.StringVar(&cursor, "cursor", "", "continue after a previous page")
			fs.IntVar(&limit, "limit", admin.DefaultListLimit, "entries per page (at most 1000)")
		}
		if err := need(0, ""); err != nil {
			return err
		}
		if global && tenant != "" {
			return usage(errors.New("--global and --tenant exclude each other"))
		}
	case "suppress import":
		fs.StringVar(&mode, "mode", admin.ImportAll, "all: nothing unless every line is valid; valid: import the valid lines")
		if err := need(1, "FILE or -"); err != nil {
			return err
		}
	case "audit":
		fs.IntVar(&limit, "limit", 50, "entries (at most 1000)")
		if err := need(0, ""); err != nil {
			return err
		}
	default:
		fmt.Fprint(c.stderr, Usage)
		return usage(fmt.Errorf("unknown command %q", cmd))
	}
	cl, err := c.client()
	if err != nil {
		return usage(err)
	}
	return c.exec(cl, cmd, pos, tenant, reason, prefix, cursor, mode, global, limit, grace)
}

func (c *cli) exec(cl *Client, cmd string, pos []string, tenant, reason, prefix, cursor, mode string, global bool, limit int, grace time.Duration) error {
	ctx := c.ctx
	switch cmd {
	case "tokens list":
		toks, err := cl.Tokens(ctx, tenant)
		if err != nil {
			return err
		}
		return c.out(map[string]any{"tokens": toks}, func(w *tabwriter.Writer) {
			fmt.Fprintln(w, "KEY ID\tTENANT\tCREATED\tLAST USED\tSTATE")
			now := time.Now()
			for _, t := range toks {
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", t.KeyID, t.Tenant, ts(t.Created), ts(t.LastUsed), tokenState(t, now))
			}
		})
	case "tokens mint", "tokens rotate":
		var m admin.Minted
		var err error
		if cmd == "tokens mint" {
			m, err = cl.Mint(ctx, tenant)
		} else {
			m, err = cl.Rotate(ctx, pos[0], grace)
		}
		if err != nil {
			return err
		}
		if c.json {
			return c.out(m, nil)
		}
		fmt.Fprintln(c.stdout, m.Token)
		fmt.Fprintf(c.stderr, "key id %s for tenant %s; the token above is shown only this once\n", m.KeyID, m.Tenant)
		if m.Old != nil {
			fmt.Fprintf(c.stderr, "old key id %s is accepted until %s\n", m.Old.KeyID, ts(m.Old.ExpiresAt))
		}
		return nil
	case "tokens revoke":
		t, err := cl.Revoke(ctx, pos[0])
		if err != nil {
			return err
		}
		return c.out(t, func(w *tabwriter.Writer) {
			fmt.Fprintf(w, "revoked %s (tenant %s) at %s\n", t.KeyID, t.Tenant, ts(t.Revoked))
		})
	case "tenants list":
		l, err := cl.Tenants(ctx)
		if err != nil {
			return err
		}
		return c.out(l, func(w *tabwriter.Writer) {
			if l.GlobalFreeze.Frozen {
				fmt.Fprintf(w, "ALL SENDING FROZEN: %s (%s, %s)\n\n", l.GlobalFreeze.Reason, l.GlobalFreeze.By, ts(l.GlobalFreeze.At))
			}
			fmt.Fprintln(w, "TENANT\tSENDING\tBREAKER\tHOUR\tDAY\tSENT/MIN\tBOUNCE\tCOMPLAINT")
			for _, t := range l.Tenants {
				fmt.Fprintf(w, "%s\t%s\t%s\t%d\t%d\t%.1f\t%s\t%s\n", t.ID, sending(t.Freeze), t.Breaker,
					t.Usage.Hour, t.Usage.Day, t.Rates.SentPerMinute, pct(t.Rates.BounceRate), pct(t.Rates.ComplaintRate))
			}
		})
	case "tenants status":
		t, err := cl.Tenant(ctx, pos[0])
		if err != nil {
			return err
		}
		return c.out(t, func(w *tabwriter.Writer) {
			l := t.Limits
			fmt.Fprintf(w, "tenant\t%s\n", t.ID)
			fmt.Fprintf(w, "sending\t%s\n", sending(t.Freeze))
			if t.Freeze.Frozen {
				fmt.Fprintf(w, "frozen\t%s (%s, %s)\n", t.Freeze.Reason, t.Freeze.By, ts(t.Freeze.At))
			}
			fmt.Fprintf(w, "breaker\t%s\n", t.Breaker)
			fmt.Fprintf(w, "rate\t%s/s burst %d\n", num(l.Rate), l.Burst)
			fmt.Fprintf(w, "this hour\t%d of %s\n", t.Usage.Hour, limitStr(l.PerHour))
			fmt.Fprintf(w, "today\t%d of %s\n", t.Usage.Day, limitStr(l.PerDay))
			fmt.Fprintf(w, "first contacts left\t%s this hour, %s today\n", left(t.Usage.FirstContactLeftHour), left(t.Usage.FirstContactLeftDay))
			fmt.Fprintf(w, "rates (%s)\t%.1f sent/min, bounces %s, complaints %s\n", t.Rates.Window, t.Rates.SentPerMinute, pct(t.Rates.BounceRate), pct(t.Rates.ComplaintRate))
		})
	case "tenants freeze", "tenants unfreeze", "freeze-all", "unfreeze-all":
		id := ""
		if len(pos) == 1 {
			id = pos[0]
		}
		frozen := cmd == "tenants freeze" || cmd == "freeze-all"
		r, err := cl.SetFrozen(ctx, id, frozen, reason)
		if err != nil {
			return err
		}
		name := r.Tenant
		if name == "" {
			name = "all sending"
		}
		return c.out(r, func(w *tabwriter.Writer) { fmt.Fprintf(w, "%s: %s\n", name, sending(r.Freeze)) })
	case "breaker list":
		l, err := cl.Tenants(ctx)
		if err != nil {
			return err
		}
		var bs []admin.BreakerStatus
		for _, t := range l.Tenants {
			b, err := cl.Breaker(ctx, t.ID)
			if err != nil {
				return err
			}
			bs = append(bs, b)
		}
		return c.out(map[string]any{"breakers": bs}, func(w *tabwriter.Writer) {
			fmt.Fprintln(w, "TENANT\tSTATE\tBOUNCE\tCOMPLAINT\tTRIPS\tLAST TRIP")
			for _, b := range bs {
				last := "-"
				if len(b.Trips) > 0 {
					last = ts(b.Trips[0].At) + " " + b.Trips[0].Reason
				}
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%d\t%s\n", b.Tenant, b.State, pct(b.Rates.BounceRate), pct(b.Rates.ComplaintRate), len(b.Trips), last)
			}
		})
	case "breaker status", "breaker reset", "breaker force-open":
		var b admin.BreakerStatus
		var err error
		switch cmd {
		case "breaker status":
			b, err = cl.Breaker(ctx, pos[0])
		case "breaker reset":
			b, err = cl.ResetBreaker(ctx, pos[0])
		default:
			b, err = cl.ForceOpen(ctx, pos[0], reason)
		}
		if err != nil {
			return err
		}
		return c.out(b, func(w *tabwriter.Writer) { printBreaker(w, b) })
	case "suppress add":
		s, err := cl.AddSuppression(ctx, admin.Suppression{Address: pos[0], Tenant: tenant, Reason: reason})
		if err != nil {
			return err
		}
		return c.out(s, func(w *tabwriter.Writer) {
			fmt.Fprintf(w, "suppressed %s on the %s list (%s)\n", s.Address, listName(s.Tenant), s.Reason)
		})
	case "suppress remove":
		if err := cl.RemoveSuppression(ctx, tenant, pos[0]); err != nil {
			return err
		}
		return c.out(map[string]string{"tenant": tenant, "address": pos[0], "removed": "true"}, func(w *tabwriter.Writer) {
			fmt.Fprintf(w, "removed %s from the %s list\n", pos[0], listName(tenant))
		})
	case "suppress list":
		p, err := cl.Suppressions(ctx, ListQuery{AllLists: !global && tenant == "", Tenant: tenant, Prefix: prefix, Cursor: cursor, Limit: limit})
		if err != nil {
			return err
		}
		if err := c.out(p, func(w *tabwriter.Writer) {
			fmt.Fprintln(w, "ADDRESS\tLIST\tREASON\tADDED\tEXPIRES")
			for _, s := range p.Suppressions {
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", s.Address, listName(s.Tenant), s.Reason, ts(s.Added), ts(s.Expires))
			}
		}); err != nil {
			return err
		}
		if p.NextCursor != "" && !c.json {
			fmt.Fprintf(c.stderr, "more: --cursor %s\n", p.NextCursor)
		}
		return nil
	case "suppress import":
		in := c.stdin
		if pos[0] != "-" {
			f, err := os.Open(pos[0])
			if err != nil {
				return err
			}
			defer f.Close()
			in = f
		}
		r, err := cl.Import(ctx, in, mode)
		var ae *APIError
		if errors.As(err, &ae) {
			printLines(c.stderr, ae.Lines)
		}
		if err != nil {
			return err
		}
		if err := c.out(r, func(w *tabwriter.Writer) {
			fmt.Fprintf(w, "imported %d, rejected %d (mode %s)\n", r.Imported, r.Rejected, r.Mode)
		}); err != nil {
			return err
		}
		if !c.json {
			printLines(c.stderr, r.Lines)
		}
		return nil
	case "suppress export":
		return cl.Export(ctx, ListQuery{AllLists: !global && tenant == "", Tenant: tenant}, c.stdout)
	case "audit":
		es, err := cl.Audit(ctx, limit)
		if err != nil {
			return err
		}
		return c.out(map[string]any{"entries": es}, func(w *tabwriter.Writer) {
			fmt.Fprintln(w, "TIME\tWHO\tACTION\tTARGET\tRESULT\tDETAIL")
			for _, e := range es {
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", ts(e.Time), e.Who, e.Action, e.Target, e.Result, e.Detail)
			}
		})
	}
	return usage(fmt.Errorf("unknown command %q", cmd))
}

func printBreaker(w io.Writer, b admin.BreakerStatus) {
	fmt.Fprintf(w, "tenant\t%s\n", b.Tenant)
	fmt.Fprintf(w, "state\t%s\n", b.State)
	if b.Reason != "" {
		fmt.Fprintf(w, "reason\t%s\n", b.Reason)
	}
	if !b.OpenUntil.IsZero() {
		fmt.Fprintf(w, "open until\t%s\n", ts(b.OpenUntil))
	}
	fmt.Fprintf(w, "rates (%s)\t%.1f sent/min, bounces %s, complaints %s\n", b.Rates.Window, b.Rates.SentPerMinute, pct(b.Rates.BounceRate), pct(b.Rates.ComplaintRate))
	for k, v := range b.Windows {
		fmt.Fprintf(w, "%s\t%s\n", k, v)
	}
	for _, t := range b.Trips {
		fmt.Fprintf(w, "trip\t%s %s\n", ts(t.At), t.Reason)
	}
}

func printLines(w io.Writer, lines []admin.LineError) {
	for _, l := range lines {
		fmt.Fprintf(w, "line %d: %s\n", l.Line, l.Message)
	}
}

func ts(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

func tokenState(t admin.TokenInfo, now time.Time) string {
	switch {
	case !t.Revoked.IsZero():
		return "revoked " + ts(t.Revoked)
	case !t.ExpiresAt.IsZero() && !now.Before(t.ExpiresAt):
		return "expired " + ts(t.ExpiresAt)
	case !t.ExpiresAt.IsZero():
		return "expires " + ts(t.ExpiresAt)
	}
	return "active"
}

func sending(f admin.Freeze) string {
	if f.Frozen {
		return "frozen"
	}
	return "sending"
}

func listName(tenant string) string {
	if tenant == "" {
		return "global"
	}
	return tenant
}

func pct(x float64) string { return fmt.Sprintf("%.2f%%", 100*x) }

func num(x float64) string {
	if x == 0 {
		return "unlimited"
	}
	return fmt.Sprint(x)
}

func limitStr(n int64) string {
	if n <= 0 {
		return "unlimited"
	}
	return fmt.Sprint(n)
}

func left(n int64) string {
	if n < 0 {
		return "unlimited"
	}
	return fmt.Sprint(n)
}
