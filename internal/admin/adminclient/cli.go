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
	"github.com/sesgate/sesgate/internal/cli"
)

// ErrUsage marks a command-line mistake (exit status 2).
var ErrUsage = errors.New("usage")

// flagsHelp ends the help of `sesgate admin`: the flags every command takes.
const flagsHelp = `flags (before or after the command):
  --addr URL   admin API (env SESGATE_ADMIN_ADDR, default http://127.0.0.1:8026)
  --token T    admin token (env SESGATE_ADMIN_TOKEN; prefer the env: flags show in ps)
  --json       print the API's JSON instead of tables`

// runner is one run of `sesgate admin`: the values of the flags every
// command takes, and the standard streams. Its methods are the commands.
type runner struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	addr, token    string
	json           bool
}

// program is the command table of `sesgate admin`: it dispatches and it is
// the help.
func (r *runner) program() cli.Program {
	return cli.Program{Name: "sesgate admin", Footer: flagsHelp, Commands: []cli.Command{
		{Name: "tokens", Subs: []cli.Command{
			{Name: "list", Args: "[--tenant ID]", About: "list sending tokens", Run: command(r.tokensList)},
			{Name: "mint", Args: "--tenant ID", About: "mint a token (printed once, alone on stdout)", Run: command(r.tokensMint)},
			{Name: "revoke", Args: "KEYID", About: "revoke a token now", Run: command(r.tokensRevoke)},
			{Name: "rotate", Args: "KEYID [--grace 1h]", About: "mint a successor; the old one works until now+grace", Run: command(r.tokensRotate)},
		}},
		{Name: "tenants", Subs: []cli.Command{
			{Name: "list", About: "tenants: state, breaker, usage, rates", Run: command(r.tenantsList)},
			{Name: "status", Args: "ID", About: "one tenant: limits, usage, budget, rates", Run: command(r.tenantsStatus)},
			{Name: "freeze", Args: "ID [--reason R]", About: "kill switch on for one tenant", Run: command(r.tenantsFreeze)},
			{Name: "unfreeze", Args: "ID", About: "kill switch off", Run: command(r.tenantsUnfreeze)},
		}},
		{Name: "tenant", Subs: []cli.Command{ // the tenants of the API (tenants.go)
			{Name: "create", Args: "-f FILE [--mint-token]", About: "create a tenant from an entry (JSON or YAML, a policy tenant entry)", Run: command(r.tenantCreate)},
			{Name: "list", Args: "[--prefix P] [--source file|api]", About: "a page of tenants, file and API (--limit N, --cursor C)", Run: command(r.tenantList)},
			{Name: "get", Args: "ID", About: "how a tenant is defined (an API tenant's entry)", Run: command(r.tenantGet)},
			{Name: "update", Args: "ID -f FILE", About: "replace an API tenant's entry", Run: command(r.tenantUpdate)},
			{Name: "delete", Args: "ID", About: "delete an API tenant and revoke its tokens", Run: command(r.tenantDelete)},
		}},
		{Name: "freeze-all", Args: "[--reason R]", About: "freeze all sending", Run: command(r.freezeAll)},
		{Name: "unfreeze-all", About: "unfreeze all sending", Run: command(r.unfreezeAll)},
		{Name: "breaker", Subs: []cli.Command{
			{Name: "list", About: "every tenant's breaker", Run: command(r.breakerList)},
			{Name: "status", Args: "TENANT", About: "state, rates, windows, trips", Run: command(r.breakerStatus)},
			{Name: "reset", Args: "TENANT", About: "close the breaker", Run: command(r.breakerReset)},
			{Name: "force-open", Args: "TENANT [--reason R]", About: "open it until a reset", Run: command(r.breakerForceOpen)},
		}},
		{Name: "suppress", Subs: []cli.Command{
			{Name: "add", Args: "ADDR [--tenant ID]", About: "suppress an address (--reason manual|hard-bounce|complaint)", Run: command(r.suppressAdd)},
			{Name: "remove", Args: "ADDR [--tenant ID]", About: "lift a suppression (no --tenant: the global list)", Run: command(r.suppressRemove)},
			{Name: "list", Args: "[--tenant ID | --global]", About: "a page of suppressions (--prefix P, --limit N, --cursor C)", Run: command(r.suppressList)},
			{Name: "import", Args: "FILE|-", About: "import a CSV (--mode all: none if a line is broken; valid: the rest)", Run: command(r.suppressImport)},
			{Name: "export", Args: "[--tenant ID | --global]", About: "print the suppressions as CSV (> FILE)", Run: command(r.suppressExport)},
		}},
		{Name: "webhooks", Subs: []cli.Command{
			{Name: "dead", Args: "[--tenant ID] [--limit N]", About: "app webhook events that ran out of retries", Run: command(r.webhooksDead)},
			{Name: "replay", Args: "ID", About: "put a dead-lettered event back in its queue", Run: command(r.webhooksReplay)},
			{Name: "health", Args: "[--tenant ID]", About: "per-tenant webhook health: backlog, oldest age, outcomes, last error", Run: command(r.webhooksHealth)},
		}},
		{Name: "audit", Args: "[--limit N]", About: "newest admin actions first", Run: command(r.audit)},
	}}
}

// command makes a cli.Run of a command of the runner, which writes to the
// runner's streams.
func command(run func(ctx context.Context, args []string) error) cli.Run {
	return func(ctx context.Context, args []string, _, _ io.Writer) error { return run(ctx, args) }
}

// Run runs `sesgate admin` with args (after "admin"). getenv reads the
// environment (os.Getenv); stdin feeds `suppress import -`.
func Run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	r := &runner{stdin: stdin, stdout: stdout, stderr: stderr,
		addr: getenv("SESGATE_ADMIN_ADDR"), token: getenv("SESGATE_ADMIN_TOKEN")}
	p := r.program()
	fs := r.flags("")
	fs.Usage = func() { fmt.Fprint(stderr, p.Usage()) }
	if err := fs.Parse(args); err != nil {
		return usage(err)
	}
	err := p.Run(ctx, fs.Args(), stdout, stderr)
	var ue cli.UsageError
	if errors.As(err, &ue) {
		// The table's own mistakes: no or an unknown command. The usage of
		// a command group already starts with "usage: ".
		return fmt.Errorf("%w: %s", ErrUsage, strings.TrimPrefix(ue.Msg, "usage: "))
	}
	return err
}

func usage(err error) error {
	if errors.Is(err, flag.ErrHelp) {
		return err
	}
	return fmt.Errorf("%w: %v", ErrUsage, err)
}

// flags returns the flag set of a command ("" for `sesgate admin` itself)
// with the flags every command takes.
func (r *runner) flags(cmd string) *flag.FlagSet {
	fs := flag.NewFlagSet(strings.TrimSpace("sesgate admin "+cmd), flag.ContinueOnError)
	fs.SetOutput(r.stderr)
	fs.StringVar(&r.addr, "addr", r.addr, "admin API base URL")
	fs.StringVar(&r.token, "token", r.token, "admin token")
	fs.BoolVar(&r.json, "json", r.json, "print JSON")
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

func (r *runner) client() (*Client, error) {
	cl, err := New(Options{Addr: r.addr, Token: r.token})
	if err != nil {
		return nil, usage(err)
	}
	return cl, nil
}

// start parses the arguments of a command (see parse) and returns its
// positional ones and the client of the admin API.
func (r *runner) start(fs *flag.FlagSet, args []string, npos int, what string) ([]string, *Client, error) {
	pos, err := parse(fs, args, npos, what)
	if err != nil {
		return nil, nil, err
	}
	cl, err := r.client()
	return pos, cl, err
}

// out prints v as JSON with --json, else runs table.
func (r *runner) out(v any, table func(w *tabwriter.Writer)) error {
	if r.json {
		enc := json.NewEncoder(r.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	}
	tw := tabwriter.NewWriter(r.stdout, 0, 4, 2, ' ', 0)
	table(tw)
	return tw.Flush()
}

func (r *runner) tokensList(ctx context.Context, args []string) error {
	fs := r.flags("tokens list")
	tenant := fs.String("tenant", "", "only this tenant's tokens")
	_, cl, err := r.start(fs, args, 0, "")
	if err != nil {
		return err
	}
	toks, err := cl.Tokens(ctx, *tenant)
	if err != nil {
		return err
	}
	return r.out(map[string]any{"tokens": toks}, func(w *tabwriter.Writer) {
		fmt.Fprintln(w, "KEY ID\tTENANT\tCREATED\tLAST USED\tSTATE")
		now := time.Now()
		for _, t := range toks {
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", t.KeyID, t.Tenant, ts(t.Created), ts(t.LastUsed), tokenState(t, now))
		}
	})
}

func (r *runner) tokensMint(ctx context.Context, args []string) error {
	fs := r.flags("tokens mint")
	tenant := fs.String("tenant", "", "tenant id (required)")
	if _, err := parse(fs, args, 0, ""); err != nil {
		return err
	}
	if *tenant == "" {
		return usage(errors.New("tokens mint: --tenant is required"))
	}
	cl, err := r.client()
	if err != nil {
		return err
	}
	m, err := cl.Mint(ctx, *tenant)
	if err != nil {
		return err
	}
	return r.minted(m)
}

func (r *runner) tokensRotate(ctx context.Context, args []string) error {
	fs := r.flags("tokens rotate")
	grace := fs.Duration("grace", time.Hour, "how long the old token keeps working")
	pos, cl, err := r.start(fs, args, 1, "KEYID")
	if err != nil {
		return err
	}
	m, err := cl.Rotate(ctx, pos[0], *grace)
	if err != nil {
		return err
	}
	return r.minted(m)
}

// minted prints a new token alone on stdout, what it is on stderr.
func (r *runner) minted(m admin.Minted) error {
	if r.json {
		return r.out(m, nil)
	}
	fmt.Fprintln(r.stdout, m.Token)
	fmt.Fprintf(r.stderr, "key id %s for tenant %s; the token above is shown only this once\n", m.KeyID, m.Tenant)
	if m.Old != nil {
		fmt.Fprintf(r.stderr, "old key id %s is accepted until %s\n", m.Old.KeyID, ts(m.Old.ExpiresAt))
	}
	return nil
}

func (r *runner) tokensRevoke(ctx context.Context, args []string) error {
	pos, cl, err := r.start(r.flags("tokens revoke"), args, 1, "an id")
	if err != nil {
		return err
	}
	t, err := cl.Revoke(ctx, pos[0])
	if err != nil {
		return err
	}
	return r.out(t, func(w *tabwriter.Writer) {
		fmt.Fprintf(w, "revoked %s (tenant %s) at %s\n", t.KeyID, t.Tenant, ts(t.Revoked))
	})
}

func (r *runner) tenantsList(ctx context.Context, args []string) error {
	_, cl, err := r.start(r.flags("tenants list"), args, 0, "")
	if err != nil {
		return err
	}
	l, err := cl.Tenants(ctx)
	if err != nil {
		return err
	}
	return r.out(l, func(w *tabwriter.Writer) {
		if l.GlobalFreeze.Frozen {
			fmt.Fprintf(w, "ALL SENDING FROZEN: %s (%s, %s)\n\n", l.GlobalFreeze.Reason, l.GlobalFreeze.By, ts(l.GlobalFreeze.At))
		}
		fmt.Fprintln(w, "TENANT\tSENDING\tBREAKER\tHOUR\tDAY\tSENT/MIN\tBOUNCE\tCOMPLAINT")
		for _, t := range l.Tenants {
			fmt.Fprintf(w, "%s\t%s\t%s\t%d\t%d\t%.1f\t%s\t%s\n", t.ID, sending(t.Freeze), t.Breaker,
				t.Usage.Hour, t.Usage.Day, t.Rates.SentPerMinute, pct(t.Rates.BounceRate), pct(t.Rates.ComplaintRate))
		}
	})
}

func (r *runner) tenantsStatus(ctx context.Context, args []string) error {
	pos, cl, err := r.start(r.flags("tenants status"), args, 1, "an id")
	if err != nil {
		return err
	}
	t, err := cl.Tenant(ctx, pos[0])
	if err != nil {
		return err
	}
	return r.out(t, func(w *tabwriter.Writer) {
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
}

func (r *runner) tenantsFreeze(ctx context.Context, args []string) error {
	fs := r.flags("tenants freeze")
	reason := fs.String("reason", "", "why (audited)")
	pos, cl, err := r.start(fs, args, 1, "an id")
	if err != nil {
		return err
	}
	return r.setFrozen(ctx, cl, pos[0], true, *reason)
}

func (r *runner) tenantsUnfreeze(ctx context.Context, args []string) error {
	pos, cl, err := r.start(r.flags("tenants unfreeze"), args, 1, "an id")
	if err != nil {
		return err
	}
	return r.setFrozen(ctx, cl, pos[0], false, "")
}

func (r *runner) freezeAll(ctx context.Context, args []string) error {
	fs := r.flags("freeze-all")
	reason := fs.String("reason", "", "why (audited)")
	_, cl, err := r.start(fs, args, 0, "")
	if err != nil {
		return err
	}
	return r.setFrozen(ctx, cl, "", true, *reason)
}

func (r *runner) unfreezeAll(ctx context.Context, args []string) error {
	_, cl, err := r.start(r.flags("unfreeze-all"), args, 0, "")
	if err != nil {
		return err
	}
	return r.setFrozen(ctx, cl, "", false, "")
}

// setFrozen sets the kill switch of tenant id, or of all sending for "".
func (r *runner) setFrozen(ctx context.Context, cl *Client, id string, frozen bool, reason string) error {
	res, err := cl.SetFrozen(ctx, id, frozen, reason)
	if err != nil {
		return err
	}
	name := res.Tenant
	if name == "" {
		name = "all sending"
	}
	return r.out(res, func(w *tabwriter.Writer) { fmt.Fprintf(w, "%s: %s\n", name, sending(res.Freeze)) })
}

func (r *runner) breakerList(ctx context.Context, args []string) error {
	_, cl, err := r.start(r.flags("breaker list"), args, 0, "")
	if err != nil {
		return err
	}
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
	return r.out(map[string]any{"breakers": bs}, func(w *tabwriter.Writer) {
		fmt.Fprintln(w, "TENANT\tSTATE\tBOUNCE\tCOMPLAINT\tTRIPS\tLAST TRIP")
		for _, b := range bs {
			last := "-"
			if len(b.Trips) > 0 {
				last = ts(b.Trips[0].At) + " " + b.Trips[0].Reason
			}
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%d\t%s\n", b.Tenant, b.State, pct(b.Rates.BounceRate), pct(b.Rates.ComplaintRate), len(b.Trips), last)
		}
	})
}

func (r *runner) breakerStatus(ctx context.Context, args []string) error {
	pos, cl, err := r.start(r.flags("breaker status"), args, 1, "an id")
	if err != nil {
		return err
	}
	return r.breaker(cl.Breaker(ctx, pos[0]))
}

func (r *runner) breakerReset(ctx context.Context, args []string) error {
	pos, cl, err := r.start(r.flags("breaker reset"), args, 1, "an id")
	if err != nil {
		return err
	}
	return r.breaker(cl.ResetBreaker(ctx, pos[0]))
}

func (r *runner) breakerForceOpen(ctx context.Context, args []string) error {
	fs := r.flags("breaker force-open")
	reason := fs.String("reason", "", "why (audited)")
	pos, cl, err := r.start(fs, args, 1, "an id")
	if err != nil {
		return err
	}
	return r.breaker(cl.ForceOpen(ctx, pos[0], *reason))
}

// breaker prints the answer of a breaker call.
func (r *runner) breaker(b admin.BreakerStatus, err error) error {
	if err != nil {
		return err
	}
	return r.out(b, func(w *tabwriter.Writer) { printBreaker(w, b) })
}

func (r *runner) suppressAdd(ctx context.Context, args []string) error {
	fs := r.flags("suppress add")
	tenant := fs.String("tenant", "", "tenant list (default: the global list)")
	reason := fs.String("reason", admin.ReasonManual, "manual, hard-bounce or complaint")
	pos, cl, err := r.start(fs, args, 1, "ADDR")
	if err != nil {
		return err
	}
	s, err := cl.AddSuppression(ctx, admin.Suppression{Address: pos[0], Tenant: *tenant, Reason: *reason})
	if err != nil {
		return err
	}
	return r.out(s, func(w *tabwriter.Writer) {
		fmt.Fprintf(w, "suppressed %s on the %s list (%s)\n", s.Address, listName(s.Tenant), s.Reason)
	})
}

func (r *runner) suppressRemove(ctx context.Context, args []string) error {
	fs := r.flags("suppress remove")
	tenant := fs.String("tenant", "", "tenant list (default: the global list)")
	pos, cl, err := r.start(fs, args, 1, "ADDR")
	if err != nil {
		return err
	}
	if err := cl.RemoveSuppression(ctx, *tenant, pos[0]); err != nil {
		return err
	}
	return r.out(map[string]string{"tenant": *tenant, "address": pos[0], "removed": "true"}, func(w *tabwriter.Writer) {
		fmt.Fprintf(w, "removed %s from the %s list\n", pos[0], listName(*tenant))
	})
}

// listFlags adds --tenant and --global to fs; the query they select is
// known once fs is parsed.
func listFlags(fs *flag.FlagSet) func() (ListQuery, error) {
	tenant := fs.String("tenant", "", "only this tenant's list")
	global := fs.Bool("global", false, "only the global list")
	return func() (ListQuery, error) {
		if *global && *tenant != "" {
			return ListQuery{}, usage(errors.New("--global and --tenant exclude each other"))
		}
		return ListQuery{AllLists: !*global && *tenant == "", Tenant: *tenant}, nil
	}
}

func (r *runner) suppressList(ctx context.Context, args []string) error {
	fs := r.flags("suppress list")
	query := listFlags(fs)
	prefix := fs.String("prefix", "", "addresses starting with this")
	cursor := fs.String("cursor", "", "continue after a previous page")
	limit := fs.Int("limit", admin.DefaultListLimit, "entries per page (at most 1000)")
	cl, q, err := r.startList(fs, args, query)
	if err != nil {
		return err
	}
	q.Prefix, q.Cursor, q.Limit = *prefix, *cursor, *limit
	p, err := cl.Suppressions(ctx, q)
	if err != nil {
		return err
	}
	if err := r.out(p, func(w *tabwriter.Writer) {
		fmt.Fprintln(w, "ADDRESS\tLIST\tREASON\tADDED\tEXPIRES")
		for _, s := range p.Suppressions {
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", s.Address, listName(s.Tenant), s.Reason, ts(s.Added), ts(s.Expires))
		}
	}); err != nil {
		return err
	}
	if p.NextCursor != "" && !r.json {
		fmt.Fprintf(r.stderr, "more: --cursor %s\n", p.NextCursor)
	}
	return nil
}

func (r *runner) suppressExport(ctx context.Context, args []string) error {
	fs := r.flags("suppress export")
	cl, q, err := r.startList(fs, args, listFlags(fs))
	if err != nil {
		return err
	}
	return cl.Export(ctx, q, r.stdout)
}

// startList is start of a command that lists suppressions: no positional
// arguments, the lists chosen by listFlags.
func (r *runner) startList(fs *flag.FlagSet, args []string, query func() (ListQuery, error)) (*Client, ListQuery, error) {
	if _, err := parse(fs, args, 0, ""); err != nil {
		return nil, ListQuery{}, err
	}
	q, err := query()
	if err != nil {
		return nil, q, err
	}
	cl, err := r.client()
	return cl, q, err
}

func (r *runner) suppressImport(ctx context.Context, args []string) error {
	fs := r.flags("suppress import")
	mode := fs.String("mode", admin.ImportAll, "all: nothing unless every line is valid; valid: import the valid lines")
	pos, cl, err := r.start(fs, args, 1, "FILE or -")
	if err != nil {
		return err
	}
	in := r.stdin
	if pos[0] != "-" {
		f, err := os.Open(pos[0])
		if err != nil {
			return err
		}
		defer f.Close()
		in = f
	}
	res, err := cl.Import(ctx, in, *mode)
	var ae *APIError
	if errors.As(err, &ae) {
		printLines(r.stderr, ae.Lines)
	}
	if err != nil {
		return err
	}
	if err := r.out(res, func(w *tabwriter.Writer) {
		fmt.Fprintf(w, "imported %d, rejected %d (mode %s)\n", res.Imported, res.Rejected, res.Mode)
	}); err != nil {
		return err
	}
	if !r.json {
		printLines(r.stderr, res.Lines)
	}
	return nil
}

func (r *runner) audit(ctx context.Context, args []string) error {
	fs := r.flags("audit")
	limit := fs.Int("limit", 50, "entries (at most 1000)")
	_, cl, err := r.start(fs, args, 0, "")
	if err != nil {
		return err
	}
	es, err := cl.Audit(ctx, *limit)
	if err != nil {
		return err
	}
	return r.out(map[string]any{"entries": es}, func(w *tabwriter.Writer) {
		fmt.Fprintln(w, "TIME\tWHO\tACTION\tTARGET\tRESULT\tDETAIL")
		for _, e := range es {
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", ts(e.Time), e.Who, e.Action, e.Target, e.Result, e.Detail)
		}
	})
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
