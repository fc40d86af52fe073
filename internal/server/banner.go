package server

import (
	"fmt"
	"io"
	"strings"
)

// bannerInfo is what the start banner shows.
type bannerInfo struct {
	s          *Settings
	addrs      []string // the sending listeners, in the order SMTP, SMTPS, HTTP
	sink       string
	devToken   string // the dev tenant's token file; empty with a policy file
	tenants    int
	adminAddr  string // empty: no admin listener
	adminToken string // the laptop's admin token file
	devAWS     string // the dev tenant's AWS credentials file
	sesRegion  string // the SES API's SigV4 region
}

// banner prints where the gateway listens and how to try it.
func banner(w io.Writer, bi bannerInfo) {
	s := bi.s
	var b strings.Builder
	b.WriteString("sesgate is running\n")
	i := 0
	next := func() string { a := bi.addrs[i]; i++; return a }
	if s.SMTPAddr != "" {
		tlsNote := "plain, AUTH allowed on loopback only"
		if s.TLSCert != "" {
			tlsNote = "STARTTLS"
		}
		fmt.Fprintf(&b, "  SMTP   %s (%s)\n", next(), tlsNote)
	}
	if s.SMTPSAddr != "" {
		fmt.Fprintf(&b, "  SMTPS  %s (implicit TLS)\n", next())
	}
	httpAddr := ""
	if s.HTTPAddr != "" {
		httpAddr = next()
		fmt.Fprintf(&b, "  HTTP   http://%s/v1/messages\n", httpAddr)
	}
	fmt.Fprintf(&b, "  sink   %s\n", bi.sink)
	if bi.devToken != "" {
		fmt.Fprintf(&b, "  tenant dev (any From address); token in %s\n", bi.devToken)
		fmt.Fprintf(&b, "  try:   curl -H \"Authorization: Bearer $(cat %s)\" -H 'Content-Type: application/json' \\\n", bi.devToken)
		fmt.Fprintf(&b, "           -d '{\"from\":\"me@example.com\",\"to\":[\"you@example.com\"],\"subject\":\"hi\",\"text\":\"hello\"}' http://%s/v1/messages\n", httpAddr)
	} else {
		fmt.Fprintf(&b, "  policy %s (%d tenants)\n", s.ConfigPath, bi.tenants)
	}
	if httpAddr != "" {
		fmt.Fprintf(&b, "  SES    http://%s (SES v2 and v1 API, SigV4, region %s)\n", httpAddr, bi.sesRegion)
	}
	if bi.devAWS != "" && httpAddr != "" {
		fmt.Fprintf(&b, "  try:   AWS_SHARED_CREDENTIALS_FILE=%s AWS_PROFILE=sesgate AWS_REGION=%s AWS_DEFAULT_REGION=%s \\\n", bi.devAWS, bi.sesRegion, bi.sesRegion)
		fmt.Fprintf(&b, "           aws sesv2 send-email --endpoint-url http://%s --from-email-address me@example.com \\\n", httpAddr)
		b.WriteString("           --destination ToAddresses=you@example.com --content 'Simple={Subject={Data=hi},Body={Text={Data=hello}}}'\n")
	}
	if bi.adminAddr == "" {
		b.WriteString("  admin  disabled\n")
	} else {
		fmt.Fprintf(&b, "  admin  http://%s/dashboard/ (API /v1/, /metrics)\n", bi.adminAddr)
	}
	if bi.adminAddr != "" && bi.adminToken != "" {
		fmt.Fprintf(&b, "         admin token in %s (sesgate admin: SESGATE_ADMIN_TOKEN=$(cat %s))\n", bi.adminToken, bi.adminToken)
	}
	fmt.Fprint(w, b.String())
}
