package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/sesgate/sesgate/auth"
	"github.com/sesgate/sesgate/gateway"
)

// Plan is a limit template: limits and breaker settings that tenants refer
// to by name (`plan: NAME`), so that many tenants do not repeat them. A
// tenant's own limits and breaker keys override the plan's key by key: a
// key the tenant writes wins (0 included), a key it leaves out is the
// plan's.
type Plan struct {
	Limits  Limits   `yaml:"limits"`
	Breaker *Breaker `yaml:"breaker"`
}

// The keys of Limits and Breaker, computed once (read-only).
var (
	limitKeys       = yamlFields(reflect.TypeFor[Limits]())
	breakerOverKeys = yamlFields(reflect.TypeFor[Breaker]())
)

// written reports whether the policy text sets the key at path.
func (d *decoder) written(path string) bool { _, ok := d.pos[path]; return ok }

// resolvePlans gives every tenant with a plan its effective limits and
// breaker settings: the plan's, with the keys the tenant writes (written)
// on top. A plan that does not exist is a problem at the tenant's plan key.
func (p *Policy) resolvePlans(written func(string) bool) []problem {
	var probs []problem
	for i := range p.Tenants {
		t := &p.Tenants[i]
		if t.Plan == "" {
			continue
		}
		tp := fmt.Sprintf("tenants[%d]", i)
		pl, ok := p.Plans[t.Plan]
		if !ok {
			names := slices.Sorted(maps.Keys(p.Plans))
			if len(names) == 0 {
				probs = append(probs, problem{path: tp + ".plan", msg: fmt.Sprintf("unknown plan %q (the policy file has no plans)", t.Plan)})
			} else {
				probs = append(probs, problem{path: tp + ".plan", msg: fmt.Sprintf("unknown plan %q (want one of: %s)", t.Plan, strings.Join(names, ", "))})
			}
			continue
		}
		lim := pl.Limits
		lim.Shadow = slices.Clone(lim.Shadow)
		own, eff := reflect.ValueOf(&t.Limits).Elem(), reflect.ValueOf(&lim).Elem()
		for key, idx := range limitKeys {
			if written(tp + ".limits." + key) {
				eff.FieldByIndex(idx).Set(own.FieldByIndex(idx))
			}
		}
		t.Limits = lim
		if pl.Breaker == nil {
			continue
		}
		brk := *pl.Breaker
		if t.Breaker != nil {
			own, eff := reflect.ValueOf(t.Breaker).Elem(), reflect.ValueOf(&brk).Elem()
			for key, idx := range breakerOverKeys {
				if written(tp + ".breaker." + key) {
					eff.FieldByIndex(idx).Set(own.FieldByIndex(idx))
				}
			}
		}
		t.Breaker = &brk
	}
	return probs
}

// validatePlans checks each plan's name, and its limits and breaker
// settings with the very checks of a tenant's (validate on a tenant made
// of the plan), reported at plans.NAME.
func (p *Policy) validatePlans() []problem {
	var probs []problem
	for _, name := range slices.Sorted(maps.Keys(p.Plans)) {
		pp := "plans." + name
		if !tenantIDRE.MatchString(name) {
			probs = append(probs, problem{path: pp, msg: "the name " + idRule})
		}
		pl := p.Plans[name]
		probe := Policy{Tenants: []Tenant{{ID: "plan", Identities: []string{"*"}, Limits: pl.Limits, Breaker: pl.Breaker}}}
		for _, c := range probe.validate() {
			if rest, ok := strings.CutPrefix(c.path, "tenants[0]."); ok {
				c.path = pp + "." + rest
				probs = append(probs, c)
			}
		}
	}
	return probs
}

// dropPlanEchoes drops the checks of a tenant's key that it does not write
// and that its plan's own check at the same key already reports (a bad
// plan is reported once, not once per tenant).
func (p *Policy) dropPlanEchoes(checks []problem, written func(string) bool) []problem {
	planProbs := map[string]bool{}
	for _, c := range checks {
		if strings.HasPrefix(c.path, "plans.") {
			planProbs[c.path] = true
		}
	}
	if len(planProbs) == 0 {
		return checks
	}
	out := checks[:0:0]
	for _, c := range checks {
		if i, rest, ok := tenantPath(c.path); ok && i < len(p.Tenants) && p.Tenants[i].Plan != "" && !written(c.path) &&
			planProbs["plans."+p.Tenants[i].Plan+"."+rest] {
			continue
		}
		out = append(out, c)
	}
	return out
}

// tenantPath splits "tenants[3].limits.rate" into 3 and "limits.rate".
func tenantPath(path string) (int, string, bool) {
	rest, ok := strings.CutPrefix(path, "tenants[")
	if !ok {
		return 0, "", false
	}
	num, rest, ok := strings.Cut(rest, "].")
	if !ok {
		return 0, "", false
	}
	i, err := strconv.Atoi(num)
	return i, rest, err == nil
}

// MaxTenantBytes bounds one tenant entry given to ParseTenant.
const MaxTenantBytes = 1 << 20

// ParseTenant decodes and checks ONE tenant entry, in the shape of an item
// of the policy file's tenants list, as JSON or YAML (JSON is YAML): the
// tenants of the admin API. It runs the very decoder and checks of Parse,
// so every key a tenant entry has in the file is accepted here with the
// same messages, and every problem is reported at once (an *Error), each
// naming its key ("limits.rate (line 1): must be >= 0"). A plan is
// resolved against file's plans (file may be nil: no plans). Tokens are
// refused: a tenant of the API gets its tokens minted through the API.
func ParseTenant(data []byte, file *Policy) (*Tenant, error) {
	if len(data) > MaxTenantBytes {
		return nil, fmt.Errorf("the tenant is larger than %d bytes", MaxTenantBytes)
	}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, fmt.Errorf("invalid JSON or YAML: %s", strings.TrimPrefix(err.Error(), "yaml: "))
	}
	if len(root.Content) == 0 || root.Content[0].ShortTag() == "!!null" {
		return nil, errors.New("the tenant is empty")
	}
	doc := root.Content[0]
	const tp = "tenants[0]"
	p := Policy{Tenants: make([]Tenant, 1)}
	if file != nil {
		// The file's plans, and its event inputs (ses.delivery_events
		// needs one), already checked with the file.
		p.Plans, p.Events = file.Plans, file.Events
	}
	d := newDecoder(len(data))
	d.at("", doc)
	d.at(tp, doc)
	d.decode(doc, reflect.ValueOf(&p.Tenants[0]).Elem(), tp)
	if d.budget < 0 {
		return nil, errors.New("invalid YAML: its aliases (*name) and merge keys (<<) expand to too many values")
	}
	checks := p.resolvePlans(d.written)
	p.Plans = nil // the file's plans were checked with the file
	checks = append(checks, p.validate()...)
	if len(p.Tenants[0].Tokens) > 0 {
		checks = append(checks, problem{path: tp + ".tokens", msg: "not accepted through the API: mint a token with the tenant (mint_token) or with POST /v1/tokens"})
	}
	probs := append(nonFinite(&root), d.report(checks)...)
	if len(probs) > 0 {
		for i, s := range probs {
			if rest, ok := strings.CutPrefix(s, tp+"."); ok {
				probs[i] = rest
			} else if rest, ok := strings.CutPrefix(s, tp+" "); ok {
				probs[i] = "the tenant " + rest
			}
		}
		return nil, &Error{Problems: probs}
	}
	return &p.Tenants[0], nil
}

// Build turns a valid tenant (from ParseTenant) into the gateway's tenant,
// as Policy.Build does for the file's.
func (t *Tenant) Build() (*gateway.Tenant, []auth.Entry) {
	ts, es := (&Policy{Tenants: []Tenant{*t}}).Build()
	return ts[0], es
}

// TenantJSON returns a tenant entry (JSON or YAML, valid: ParseTenant
// accepted it) as compact JSON, the form the store keeps.
func TenantJSON(data []byte) ([]byte, error) {
	var v any
	if err := yaml.Unmarshal(data, &v); err != nil {
		return nil, err
	}
	return json.Marshal(v)
}
