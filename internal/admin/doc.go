// Package admin is the operator's side of sesgate: an HTTP API (and the
// dashboard page in admin/dashboard) to list, mint, revoke and rotate sending
// tokens, freeze and unfreeze a tenant or all sending (the kill switch),
// inspect, reset or force open breakers, manage suppressions, read the
// audit log, and create, update, list and delete tenants at run time
// (tenantentries.go: TenantEntries, the entry in the policy file's shape;
// a file tenant is 409 there, naming the file; a refused entry is 400
// invalid_tenant with every problem in "problems"). The CLI (sesgate admin, package admin/adminclient) speaks to it.
//
// The Handler is mounted on its own listener (default 127.0.0.1:8026), never
// on a sending listener. It reaches state only through the small interfaces
// in backend.go (Tokens, Tenants, Breakers, Suppressions, Audit): package
// admin/storeadmin implements them on the shared store, and
// limiter/guard.Guard is the Breakers (its Status shown as BreakerStatus by
// BreakerView; its guard.ErrUnknownTenant is a 404 like ErrNotFound). The
// breaker's states are store.BreakerState and its trips store.Trip, with
// their stored text on the wire.
//
// # Invariants
//
//   - Every request under /v1/ (and /metrics) needs Authorization: Bearer
//     with an admin token (auth.NewToken's format, stored as auth.HashToken
//     in the policy file, given as Options.AdminTokens). Sending tokens are
//     not admin tokens. Missing or wrong: 401 before any routing; failures
//     are throttled per source address (IPv6 per /64): 429 with Retry-After.
//   - JSON in and out; unknown fields, trailing data and bodies over
//     MaxBodyBytes are refused (400, 413); errors are
//     {"error":{"code":"...","message":"..."}} with codes unauthorized,
//     auth_throttled, malformed, invalid, invalid_csv, not_found, conflict,
//     too_large, unsupported_media_type, method_not_allowed, timeout, internal.
//   - Every action (anything that is not a GET) is audited, refused ones
//     included: one slog line ("admin action": who, action, target, result)
//     and one Audit.Record (who is the admin key id). No token is ever
//     logged or recorded; a minted token appears only in its one answer.
//   - A failed action changes nothing: an unknown tenant is 404 before any
//     write; a CSV import in mode=all writes nothing when a line is broken.
//   - No cookies: the dashboard sends the bearer header from script, so a
//     cross-site page cannot act with the operator's rights (no CSRF). Every
//     answer carries a self-only Content-Security-Policy, X-Frame-Options
//     DENY, nosniff and Cache-Control no-store.
//   - /metrics (when Options.Metrics is set) is behind the same admin token:
//     give Prometheus one in its scrape config (authorization: credentials).
//
// # Routes
//
//	GET    /                                      redirect to /dashboard/ (no auth; the page asks for a token)
//	GET    /dashboard/                            the dashboard page, app.js, app.css (no auth)
//	GET    /metrics                               Prometheus exposition (admin token)
//
//	GET    /v1/tokens[?tenant=ID]                 {"tokens":[TokenInfo]}
//	POST   /v1/tokens            {"tenant":ID}    201 Minted: {"token":"sg_...","key_id",...} (token shown once)
//	POST   /v1/tokens/{keyid}/revoke              TokenInfo; 404 unknown, 409 already revoked
//	POST   /v1/tokens/{keyid}/rotate {"grace":"1h"}  201 Minted with "old" (its expires_at = now+grace,
//	                                              grace 0s..168h, default 1h); 409 revoked or expired
//
//	GET    /v1/tenants                            {"global_freeze":Freeze,"tenants":[TenantStatus]}
//	GET    /v1/tenants/{id}                       TenantStatus: limits, usage (hour, day, first-contact
//	                                              budget left), rates, freeze, breaker state
//	GET    /v1/tenants/{id}/series                {"tenant","points":[{at,sent,bounces,complaints}]} (60 minutes)
//	POST   /v1/tenants/{id}/freeze {"reason":..}  {"tenant","freeze"}; 404 unknown tenant (nothing changed)
//	POST   /v1/tenants/{id}/unfreeze              {"tenant","freeze"}
//	GET    /v1/freeze                             the global kill switch: Freeze
//	POST   /v1/freeze {"reason":..}               freeze all sending
//	POST   /v1/unfreeze                           unfreeze all sending
//
//	GET    /v1/breakers                           {"breakers":[BreakerStatus]} for every tenant
//	GET    /v1/breakers/{id}                      BreakerStatus: state, rates, windows, trips
//	POST   /v1/breakers/{id}/reset                BreakerStatus after the reset
//	POST   /v1/breakers/{id}/force-open {"reason"}  BreakerStatus after (open until a reset)
//
//	GET    /v1/suppressions?tenant=&prefix=&cursor=&limit=
//	                                              {"suppressions":[...],"next_cursor":""}; tenant absent:
//	                                              every list, tenant= (empty): the global list; limit <= 1000
//	POST   /v1/suppressions {"address","tenant","reason","expires"}  201; reason manual (default),
//	                                              hard-bounce or complaint; tenant "" is the global list
//	DELETE /v1/suppressions?tenant=&address=      404 when not listed
//	POST   /v1/suppressions/import?mode=all|valid CSV body (CSVHeader columns; header line optional,
//	                                              # comments): ImportResult, or 400 invalid_csv listing
//	                                              {"line","message"} of every broken line (mode=all
//	                                              imports nothing; mode=valid imports the rest)
//	GET    /v1/suppressions/export?tenant=        CSV stream (text/csv)
//
//	GET    /v1/audit?limit=100                    {"entries":[AuditEntry]} newest first
//
//	GET    /v1/account?span=1h                    AccountView: SES's and the account guard's lines, the
//	                                              guard's state, the span's minutes (1h, 3h or 6h) summed over
//	                                              the tenants, sesgate's own hour/day counts, the SES quota
//	GET    /v1/feed?limit=100                     {"items":[FeedItem]} newest first (limit <= 500): audited
//	                                              actions, and every replica's logged warnings and errors
//	                                              (breaker trips, the account guard, degraded store, SES
//	                                              errors) from the shared feed (Options.Dashboard; without
//	                                              it the breaker trips and this replica's ring); token,
//	                                              tenant and breaker reads cached 5 s
//	GET    /v1/refusals?span=1h                   {"scope","span","tenants":{id:{reason:n}},"minutes":{id:[n]}}:
//	                                              every replica's refusals over the span (Options.Dashboard);
//	                                              without it this replica's metrics since it started
//	GET    /v1/tenants/{id}/refusals?span=1h      RefusalSeries: per minute by reason (Options.Dashboard)
//	GET    /v1/tenants/{id}/series?span=1h        per-minute points over 1h, 3h or 6h
//	GET    /v1/messages/{id}                      MessageJourney by sesgate id or SES MessageId (with
//	                                              Options.Messages); an address is 400 (use the route below)
//	GET    /v1/recipients/{address}/messages?tenant=
//	                                              RecipientSearch: the last 20 messages to the address,
//	                                              newest first, with their journeys (Options.Dashboard and
//	                                              Options.Messages)
//
// A span other than 1h, 3h or 6h is 400 "span: want 1h, 3h or 6h, got ...".
//
// Freeze, unfreeze and reset are idempotent (200 when already in that state).
//
// # Examples
//
//	export T=sg_...   # an admin token
//	curl -sH "Authorization: Bearer $T" http://127.0.0.1:8026/v1/tenants
//	curl -sH "Authorization: Bearer $T" -d '{"reason":"token leaked"}' \
//	     http://127.0.0.1:8026/v1/tenants/billing/freeze
//	curl -sH "Authorization: Bearer $T" -d '{"tenant":"billing"}' http://127.0.0.1:8026/v1/tokens
//	curl -sH "Authorization: Bearer $T" -d '{"grace":"30m"}' \
//	     http://127.0.0.1:8026/v1/tokens/abcdefghij/rotate
//	curl -sH "Authorization: Bearer $T" -X POST http://127.0.0.1:8026/v1/breakers/billing/reset
//	curl -sH "Authorization: Bearer $T" -H 'Content-Type: text/csv' --data-binary @list.csv \
//	     'http://127.0.0.1:8026/v1/suppressions/import?mode=valid'
//	curl -sH "Authorization: Bearer $T" 'http://127.0.0.1:8026/v1/suppressions/export' > list.csv
//	curl -sH "Authorization: Bearer $T" -X DELETE \
//	     'http://127.0.0.1:8026/v1/suppressions?tenant=billing&address=a@example.com'
package admin
