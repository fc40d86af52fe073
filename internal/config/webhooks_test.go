package config

import (
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestWebhookKeys(t *testing.T) {
	dir := t.TempDir()
	sec := func(c byte) string {
		return "whsec_" + base64.StdEncoding.EncodeToString([]byte(strings.Repeat(string(c), 32)))
	}
	good := filepath.Join(dir, "hook.secret")
	if err := os.WriteFile(good, []byte(sec('a')+"\n"+sec('b')+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(dir, "bad.secret")
	if err := os.WriteFile(bad, []byte("hunter2\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("HOOK_SECRET", sec('c'))
	head := "tenants:\n  - id: acme\n    identities: [\"@acme.example\"]\n    webhooks:\n"

	p, err := Parse([]byte(head + `      - url: https://hooks.acme.example/sesgate
        events: [bounce, complaint, breaker_opened]
        secret_file: ` + good + `
        include_subject: true
      - url: http://127.0.0.1:9000/hook
        events: [delivery]
        secret_env: HOOK_SECRET
        allow_http: true
        allow_networks: [127.0.0.0/8]
`))
	if err != nil {
		t.Fatal(err)
	}
	eps := p.Webhooks()["acme"]
	if len(eps) != 2 || len(eps[0].Keys) != 2 || string(eps[0].Keys[1]) != strings.Repeat("b", 32) || !eps[0].IncludeSubject ||
		len(eps[1].Keys) != 1 || !eps[1].AllowHTTP || eps[1].Allow[0].String() != "127.0.0.0/8" || eps[1].Events[0] != "delivery" {
		t.Fatalf("endpoints %+v", eps)
	}

	tests := []struct {
		name, doc string
		want      []string // every problem, exactly
	}{
		{"bad values", head + `      - url: http://hooks.example/x
        events: [bounce, open, bounce]
        secret_file: ` + bad + `
        allow_networks: [localhost]
      - url: ftp://hooks.example/x
        events: []
        secret_env: "NOT SET"
      - url: https://hooks.example/y
        events: [delivery]
        secret_env: SESGATE_TEST_UNSET_HOOK
      - url: https://hooks.example/z
        events: [delivery]
        secret_file: ` + good + `
        secret_env: HOOK_SECRET
      - url: https://hooks.example/w
        events: [send]
        secret_file: ` + filepath.Join(dir, "missing") + `
`, []string{
			"tenants[0].webhooks[0].url (line 5): must be https (or allow_http: true)",
			`tenants[0].webhooks[0].events[1] (line 6): "open" is not an event type (want one of send, delivery, bounce, complaint, reject, delivery_delay, rendering_failure, refused_by_breaker, breaker_opened, breaker_closed, suppressed)`,
			`tenants[0].webhooks[0].events[2] (line 6): "bounce" is listed twice`,
			"tenants[0].webhooks[0].secret_file (line 7): secret 1 does not start with whsec_",
			`tenants[0].webhooks[0].allow_networks[0] (line 8): "localhost" is not a CIDR`,
			"tenants[0].webhooks[1].url (line 9): must be an https URL",
			"tenants[0].webhooks[1].events (line 10): at least one event type is required (send, delivery, bounce, complaint, reject, delivery_delay, rendering_failure, refused_by_breaker, breaker_opened, breaker_closed, suppressed)",
			`tenants[0].webhooks[1].secret_env (line 11): "NOT SET" is not an environment variable name`,
			"tenants[0].webhooks[2].secret_env (line 14): environment variable SESGATE_TEST_UNSET_HOOK is not set",
			"tenants[0].webhooks[3] (line 15): set secret_file or secret_env (one of them)",
			"tenants[0].webhooks[4].secret_file (line 21): open " + filepath.Join(dir, "missing") + ": no such file or directory",
		}},
		{"plaintext secret refused", head + "      - {url: https://hooks.example/x, events: [send], secret: whsec_abc}\n",
			[]string{"tenants[0].webhooks[0] (line 5): set secret_file or secret_env (one of them)",
				"tenants[0].webhooks[0].secret (line 5): unknown key (want one of: url, events, secret_file, secret_env, include_subject, allow_http, allow_networks)"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.doc))
			ce, ok := err.(*Error)
			if !ok {
				t.Fatalf("error %v, want *Error", err)
			}
			if strings.Join(ce.Problems, "\n") != strings.Join(tc.want, "\n") {
				t.Fatalf("problems:\n%s\nwant:\n%s", strings.Join(ce.Problems, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
}
