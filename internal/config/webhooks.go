package config

import (
	"fmt"
	"net/netip"
	"os"
	"regexp"
	"slices"
	"strings"

	"github.com/sesgate/sesgate/limiter/webhook"
)

// Webhook is one app webhook of a tenant (tenants[].webhooks[]): where
// sesgate posts the tenant's events, signed per Standard Webhooks.
type Webhook struct {
	URL string `yaml:"url"`
	// Events are the types wanted (webhook.EventTypes).
	Events []string `yaml:"events"`
	// SecretFile or SecretEnv (one of them) holds the signing secrets:
	// whsec_<base64>, several separated by white space during a rotation
	// (each signs every delivery). Never the secret itself in the policy.
	SecretFile string `yaml:"secret_file"`
	SecretEnv  string `yaml:"secret_env"`
	// IncludeSubject puts the message's subject in the payloads (default
	// false: subjects may carry personal data).
	IncludeSubject bool `yaml:"include_subject"`
	// AllowHTTP accepts an http:// URL (default: https only).
	AllowHTTP bool `yaml:"allow_http"`
	// AllowNetworks may be reached although loopback, private, link-local,
	// CGNAT or metadata addresses are refused by default.
	AllowNetworks []string `yaml:"allow_networks"`

	keys [][]byte // read from SecretFile or SecretEnv by validate
}

// MaxWebhooks bounds the webhooks of one tenant.
const MaxWebhooks = 5

var envNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,127}$`)

// Endpoint returns the webhook as the dispatcher takes it (a valid policy:
// its secrets were read when it was loaded).
func (w *Webhook) Endpoint() webhook.Endpoint {
	e := webhook.Endpoint{URL: w.URL, Events: w.Events, Keys: w.keys, IncludeSubject: w.IncludeSubject, AllowHTTP: w.AllowHTTP}
	for _, n := range w.AllowNetworks {
		e.Allow = append(e.Allow, netip.MustParsePrefix(n).Masked())
	}
	return e
}

// Webhooks returns the tenants' webhooks (tenants without any left out).
func (p *Policy) Webhooks() map[string][]webhook.Endpoint {
	out := map[string][]webhook.Endpoint{}
	for _, t := range p.Tenants {
		for i := range t.Webhooks {
			out[t.ID] = append(out[t.ID], t.Webhooks[i].Endpoint())
		}
	}
	return out
}

// validateWebhooks checks every tenant's webhooks and reads their secrets.
func (p *Policy) validateWebhooks() []problem {
	var probs []problem
	add := func(path, format string, args ...any) {
		probs = append(probs, problem{path: path, msg: fmt.Sprintf(format, args...)})
	}
	for i := range p.Tenants {
		t := &p.Tenants[i]
		if len(t.Webhooks) > MaxWebhooks {
			add(fmt.Sprintf("tenants[%d].webhooks", i), "at most %d webhooks per tenant", MaxWebhooks)
		}
		urls := map[string]int{}
		for j := range t.Webhooks {
			w := &t.Webhooks[j]
			wp := fmt.Sprintf("tenants[%d].webhooks[%d]", i, j)
			if _, err := webhook.CheckURL(w.URL, w.AllowHTTP); err != nil {
				add(wp+".url", "%v", err)
			} else if k, dup := urls[w.URL]; dup {
				add(wp+".url", "duplicate of webhooks[%d]", k)
			} else {
				urls[w.URL] = j
			}
			if len(w.Events) == 0 {
				add(wp+".events", "at least one event type is required (%s)", strings.Join(webhook.EventTypes(), ", "))
			}
			for k, e := range w.Events {
				if !slices.Contains(webhook.EventTypes(), e) {
					add(fmt.Sprintf("%s.events[%d]", wp, k), "%q is not an event type (want one of %s)", e, strings.Join(webhook.EventTypes(), ", "))
				} else if slices.Index(w.Events, e) != k {
					add(fmt.Sprintf("%s.events[%d]", wp, k), "%q is listed twice", e)
				}
			}
			for k, n := range w.AllowNetworks {
				if _, err := netip.ParsePrefix(n); err != nil {
					add(fmt.Sprintf("%s.allow_networks[%d]", wp, k), "%q is not a CIDR", n)
				}
			}
			var text, from string
			switch {
			case (w.SecretFile == "") == (w.SecretEnv == ""):
				add(wp, "set secret_file or secret_env (one of them)")
				continue
			case w.SecretFile != "":
				from = wp + ".secret_file"
				b, err := os.ReadFile(w.SecretFile)
				if err != nil {
					add(from, "%v", err)
					continue
				}
				text = string(b)
			default:
				from = wp + ".secret_env"
				if !envNameRE.MatchString(w.SecretEnv) {
					add(from, "%q is not an environment variable name", w.SecretEnv)
					continue
				}
				v, ok := os.LookupEnv(w.SecretEnv)
				if !ok {
					add(from, "environment variable %s is not set", w.SecretEnv)
					continue
				}
				text = v
			}
			keys, err := webhook.ParseSecrets(text)
			if err != nil {
				add(from, "%v", err)
				continue
			}
			w.keys = keys
		}
	}
	return probs
}
