package main

import (
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ses"
	sesv1types "github.com/aws/aws-sdk-go-v2/service/ses/types"
	"github.com/aws/aws-sdk-go-v2/service/sesv2"
	"github.com/aws/aws-sdk-go-v2/service/sesv2/types"
	"github.com/aws/smithy-go"

	"github.com/sesgate/sesgate/internal/redistest"
	"github.com/sesgate/sesgate/internal/sestest"
)

// awsKey is an access key pair printed by `sesgate token new --aws`.
type awsKey struct{ id, secret, line string }

func mintAWSKey(t *testing.T, env []string, tenant string) awsKey {
	t.Helper()
	out := runCLI(t, env, "token", "new", "--aws", "--tenant", tenant)
	id := regexp.MustCompile(`AWS access key id: (SGAWSK\S+)`).FindStringSubmatch(out)
	sec := regexp.MustCompile(`secret access key \(shown once, give it to the app\): (\S{40})\n`).FindStringSubmatch(out)
	line := regexp.MustCompile(`- (\{aws_access_key_id: .*\})`).FindStringSubmatch(out)
	if id == nil || sec == nil || line == nil {
		t.Fatalf("token new --aws: %s", out)
	}
	return awsKey{id[1], sec[1], line[1]}
}

// signer signs with the SDK's own SigV4 signer, optionally with a skewed
// clock or another service name: a client that is wrong in one way.
type signer struct {
	skew    time.Duration
	service string
}

func (s signer) SignHTTP(ctx context.Context, c aws.Credentials, r *http.Request, payloadHash, service, region string, at time.Time, opts ...func(*v4.SignerOptions)) error {
	if s.service != "" {
		service = s.service
	}
	return v4.NewSigner().SignHTTP(ctx, c, r, payloadHash, service, region, at.Add(s.skew), opts...)
}

func v2Client(addr string, k awsKey, region string, sg *signer) *sesv2.Client {
	o := sesv2.Options{Region: region, BaseEndpoint: aws.String("http://" + addr), RetryMaxAttempts: 1,
		Credentials: credentials.NewStaticCredentialsProvider(k.id, k.secret, "")}
	if sg != nil {
		o.HTTPSignerV4 = *sg
	}
	return sesv2.New(o)
}

func v1Client(addr string, k awsKey, region string, sg *signer) *ses.Client {
	o := ses.Options{Region: region, BaseEndpoint: aws.String("http://" + addr), RetryMaxAttempts: 1,
		Credentials: credentials.NewStaticCredentialsProvider(k.id, k.secret, "")}
	if sg != nil {
		o.HTTPSignerV4 = *sg
	}
	return ses.New(o)
}

// apiCode returns the error code the SDK read, "" for none.
func apiCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

func simple(from string, to ...string) *sesv2.SendEmailInput {
	return &sesv2.SendEmailInput{
		FromEmailAddress: aws.String(from),
		Destination:      &types.Destination{ToAddresses: to},
		Content: &types.EmailContent{Simple: &types.Message{
			Subject: &types.Content{Data: aws.String("hello")},
			Body:    &types.Body{Text: &types.Content{Data: aws.String("hi there")}},
		}},
	}
}

// TestSESAPIDropIn points the real aws-sdk-go-v2 sesv2 and ses clients at
// two sesgate replicas (one Redis, the SES sink on sestest), each with only
// its endpoint and a sesgate AWS key: every operation answers in SES's
// shapes with SES's MessageId, every refusal is the SDK's typed error, the
// message's tags and configuration set reach SES, and an AWS key revoked
// through the admin API is refused on both replicas within a second.
func TestSESAPIDropIn(t *testing.T) {
	rs := redistest.Start(t)
	sesSrv, url, stopSES, err := sestest.Start(sestest.Options{Templates: []string{"welcome"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stopSES)
	secretFile := filepath.Join(t.TempDir(), "aws-key-secret")
	if err := os.WriteFile(secretFile, []byte("0123456789abcdef0123456789abcdef-test-server-key\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	keyEnv := []string{"SESGATE_AWS_KEY_SECRET_FILE=" + secretFile}
	billing, slow, frozen := mintAWSKey(t, keyEnv, "billing"), mintAWSKey(t, keyEnv, "slow"), mintAWSKey(t, keyEnv, "frozen")
	_, _, adminTok, adminLine := mintPolicyTokens(t)
	policy := "admin_tokens:\n  - " + adminLine + "\n" +
		"tenants:\n" +
		"  - id: billing\n    tokens:\n      - " + billing.line + "\n    identities: [\"@billing.example.com\"]\n" +
		"    limits: {rate: 1000, burst: 1000, per_day: 5000}\n    ses: {configuration_set: cs-billing}\n" +
		"  - id: slow\n    tokens:\n      - " + slow.line + "\n    identities: [\"@slow.example.com\"]\n    limits: {rate: 0.01, burst: 1}\n" +
		"  - id: frozen\n    tokens:\n      - " + frozen.line + "\n    identities: [\"@frozen.example.com\"]\n    frozen: true\n" +
		"  - id: other\n    identities: [\"@other.example.com\"]\n"
	path := filepath.Join(t.TempDir(), "policy.yml")
	if err := os.WriteFile(path, []byte(policy), 0o600); err != nil {
		t.Fatal(err)
	}
	env := append(sesEnv(t, url), append(keyEnv, "SESGATE_REDIS_URL=redis://"+rs.Addr, "SESGATE_RECIPIENT_KEY=0123456789abcdef0123456789abcdef")...)
	g1 := startGateway(t, env, "--config", path)
	g2 := startGateway(t, env, "--config", path)
	ctx := t.Context()
	const region = "us-east-1"
	c2 := v2Client(g1.httpAddr, billing, region, nil)
	c1 := v1Client(g1.httpAddr, billing, region, nil)

	t.Run("v2 SendEmail simple, tags and configuration set reach SES", func(t *testing.T) {
		in := simple("App <app@billing.example.com>", "a@example.org")
		in.Destination.BccAddresses = []string{"hidden@example.org"}
		in.ReplyToAddresses = []string{"help@billing.example.com"}
		in.Content.Simple.Headers = []types.MessageHeader{{Name: aws.String("X-Campaign"), Value: aws.String("spring")}}
		in.Content.Simple.Attachments = []types.Attachment{{FileName: aws.String("a.txt"), RawContent: []byte("attached"), ContentType: aws.String("text/plain")}}
		in.EmailTags = []types.MessageTag{{Name: aws.String("campaign"), Value: aws.String("spring")}}
		in.ConfigurationSetName = aws.String("cs-billing")
		out, err := c2.SendEmail(ctx, in)
		if err != nil {
			t.Fatal(err)
		}
		m, ok := sesSrv.Message(aws.ToString(out.MessageId))
		if !ok {
			t.Fatalf("MessageId %q is not SES's", aws.ToString(out.MessageId))
		}
		if m.Tags["campaign"] != "spring" || m.Tags["sesgate-tenant"] != "billing" || m.ConfigurationSet != "cs-billing" {
			t.Fatalf("tags %v, configuration set %q", m.Tags, m.ConfigurationSet)
		}
		raw := string(m.Raw)
		if !strings.Contains(raw, "X-Campaign: spring") || !strings.Contains(raw, "a.txt") || strings.Contains(raw, "hidden@") ||
			!strings.Contains(raw, "Reply-To: <help@billing.example.com>") || !slicesEqual(m.Recipients(), []string{"a@example.org", "hidden@example.org"}) {
			t.Fatalf("recipients %v, message:\n%s", m.Recipients(), raw)
		}
	})

	t.Run("v2 SendEmail raw", func(t *testing.T) {
		raw := "From: app@billing.example.com\r\nTo: b@example.org\r\nSubject: raw\r\n\r\nraw body\r\n"
		out, err := c2.SendEmail(ctx, &sesv2.SendEmailInput{Content: &types.EmailContent{Raw: &types.RawMessage{Data: []byte(raw)}}})
		if err != nil {
			t.Fatal(err)
		}
		if m, ok := sesSrv.Message(aws.ToString(out.MessageId)); !ok || !slicesEqual(m.Recipients(), []string{"b@example.org"}) {
			t.Fatalf("SES got %+v (%v)", m, ok)
		}
	})

	t.Run("v2 GetAccount reports the tenant's quota and usage", func(t *testing.T) {
		out, err := c2.GetAccount(ctx, &sesv2.GetAccountInput{})
		if err != nil {
			t.Fatal(err)
		}
		q := out.SendQuota
		if q.Max24HourSend != 5000 || q.MaxSendRate != 1000 || q.SentLast24Hours != 3 || !out.SendingEnabled || !out.ProductionAccessEnabled {
			t.Fatalf("GetAccount: %+v, sending %v", *q, out.SendingEnabled)
		}
		fo, err := v2Client(g1.httpAddr, frozen, region, nil).GetAccount(ctx, &sesv2.GetAccountInput{})
		if err != nil || fo.SendingEnabled {
			t.Fatalf("frozen tenant: %+v, %v", fo, err)
		}
	})

	t.Run("v2 refusals are the SDK's typed errors", func(t *testing.T) {
		var rej *types.MessageRejected
		if _, err := c2.SendEmail(ctx, simple("boss@other.example.com", "a@example.org")); !errors.As(err, &rej) {
			t.Fatalf("foreign identity: %v", err)
		}
		var bad *types.BadRequestException
		in := simple("app@billing.example.com", "a@example.org")
		in.ConfigurationSetName = aws.String("cs-other")
		if _, err := c2.SendEmail(ctx, in); !errors.As(err, &bad) {
			t.Fatalf("foreign configuration set: %v", err)
		}
		in = simple("app@billing.example.com", "a@example.org")
		in.FromEmailAddressIdentityArn = aws.String("arn:aws:ses:us-east-1:123456789012:identity/billing.example.com")
		if _, err := c2.SendEmail(ctx, in); !errors.As(err, &bad) || !strings.Contains(err.Error(), "FromEmailAddressIdentityArn") {
			t.Fatalf("identity ARN: %v", err)
		}
		in = simple("app@billing.example.com", "a@example.org")
		in.TenantName = aws.String("someone")
		if _, err := c2.SendEmail(ctx, in); !errors.As(err, &bad) || !strings.Contains(err.Error(), "TenantName") {
			t.Fatalf("TenantName: %v", err)
		}
		in = simple("app@billing.example.com", "a@example.org")
		in.EmailTags = []types.MessageTag{{Name: aws.String("sesgate-tenant"), Value: aws.String("other")}}
		if _, err := c2.SendEmail(ctx, in); !errors.As(err, &bad) {
			t.Fatalf("reserved tag: %v", err)
		}
		sc := v2Client(g1.httpAddr, slow, region, nil)
		if _, err := sc.SendEmail(ctx, simple("app@slow.example.com", "a@example.org")); err != nil {
			t.Fatalf("first of the slow tenant: %v", err)
		}
		var tooMany *types.TooManyRequestsException
		if _, err := sc.SendEmail(ctx, simple("app@slow.example.com", "a@example.org")); !errors.As(err, &tooMany) {
			t.Fatalf("over the rate: %v", err)
		}
		var pausedErr *types.SendingPausedException
		if _, err := v2Client(g1.httpAddr, frozen, region, nil).SendEmail(ctx, simple("app@frozen.example.com", "a@example.org")); !errors.As(err, &pausedErr) {
			t.Fatalf("frozen: %v", err)
		}
		var notFound *types.NotFoundException
		tin := &sesv2.SendEmailInput{FromEmailAddress: aws.String("app@billing.example.com"), Destination: &types.Destination{ToAddresses: []string{"a@example.org"}},
			Content: &types.EmailContent{Template: &types.Template{TemplateName: aws.String("nope")}}}
		if _, err := c2.SendEmail(ctx, tin); !errors.As(err, &notFound) {
			t.Fatalf("unknown template: %v", err)
		}
		tin.Content.Template.Headers = []types.MessageHeader{{Name: aws.String("Reply-To"), Value: aws.String("ceo@other.example.com")}}
		tin.Content.Template.TemplateName = aws.String("welcome")
		if _, err := c2.SendEmail(ctx, tin); !errors.As(err, &bad) {
			t.Fatalf("template header Reply-To: %v", err)
		}
		tin.Content.Template.Headers = nil
		tin.FromEmailAddress = aws.String("ceo@other.example.com")
		if _, err := c2.SendEmail(ctx, tin); !errors.As(err, &rej) {
			t.Fatalf("template from a foreign identity: %v", err)
		}
		if _, err := c2.ListContactLists(ctx, &sesv2.ListContactListsInput{}); apiCode(err) != "UnknownOperationException" {
			t.Fatalf("unknown operation: %v", err)
		}
	})

	t.Run("v2 templates and SendBulkEmail", func(t *testing.T) {
		out, err := c2.SendEmail(ctx, &sesv2.SendEmailInput{FromEmailAddress: aws.String("App <app@billing.example.com>"),
			Destination: &types.Destination{ToAddresses: []string{"t1@example.org"}, BccAddresses: []string{"t2@example.org"}},
			Content: &types.EmailContent{Template: &types.Template{TemplateName: aws.String("welcome"), TemplateData: aws.String(`{"name":"Ann"}`),
				Headers: []types.MessageHeader{{Name: aws.String("X-Campaign"), Value: aws.String("spring")}}}}})
		if err != nil {
			t.Fatal(err)
		}
		m, ok := sesSrv.Message(aws.ToString(out.MessageId))
		if !ok || m.Template == nil || m.Template.TemplateName != "welcome" || m.Template.TemplateData != `{"name":"Ann"}` ||
			!slicesEqual(m.To, []string{"t1@example.org"}) || !slicesEqual(m.Bcc, []string{"t2@example.org"}) || m.Tags["sesgate-tenant"] != "billing" {
			t.Fatalf("SES got %+v (%v)", m, ok)
		}
		out, err = c2.SendEmail(ctx, &sesv2.SendEmailInput{FromEmailAddress: aws.String("app@billing.example.com"),
			Destination: &types.Destination{ToAddresses: []string{"t3@example.org"}},
			Content: &types.EmailContent{Template: &types.Template{TemplateContent: &types.EmailTemplateContent{
				Subject: aws.String("Hi {{name}}"), Html: aws.String("<p>{{name}}</p>")}, TemplateData: aws.String(`{"name":"Bo"}`)}}})
		if err != nil {
			t.Fatal(err)
		}
		if m, ok := sesSrv.Message(aws.ToString(out.MessageId)); !ok || m.Template.TemplateContent == nil || m.Template.TemplateContent.Subject != "Hi {{name}}" {
			t.Fatalf("inline template: %+v", m.Template)
		}
		bulk, err := c2.SendBulkEmail(ctx, &sesv2.SendBulkEmailInput{FromEmailAddress: aws.String("app@billing.example.com"),
			DefaultContent:   &types.BulkEmailContent{Template: &types.Template{TemplateName: aws.String("welcome"), TemplateData: aws.String(`{"name":"you"}`)}},
			DefaultEmailTags: []types.MessageTag{{Name: aws.String("campaign"), Value: aws.String("bulk")}},
			BulkEmailEntries: []types.BulkEmailEntry{
				{Destination: &types.Destination{ToAddresses: []string{"b1@example.org"}}},
				{Destination: &types.Destination{ToAddresses: []string{"b2@example.org"}},
					ReplacementEmailContent: &types.ReplacementEmailContent{ReplacementTemplate: &types.ReplacementTemplate{ReplacementTemplateData: aws.String(`{"name":"Cy"}`)}},
					ReplacementTags:         []types.MessageTag{{Name: aws.String("campaign"), Value: aws.String("vip")}}},
				{Destination: &types.Destination{ToAddresses: []string{"not an address"}}},
			}})
		if err != nil {
			t.Fatal(err)
		}
		r := bulk.BulkEmailEntryResults
		if len(r) != 3 || r[0].Status != types.BulkEmailStatusSuccess || r[1].Status != types.BulkEmailStatusSuccess || r[2].Status != types.BulkEmailStatusInvalidParameter {
			t.Fatalf("bulk results %+v", r)
		}
		m1, _ := sesSrv.Message(aws.ToString(r[0].MessageId))
		m2, _ := sesSrv.Message(aws.ToString(r[1].MessageId))
		if m1.Template == nil || m1.Template.TemplateData != `{"name":"you"}` || m1.Tags["campaign"] != "bulk" ||
			m2.Template == nil || m2.Template.TemplateData != `{"name":"Cy"}` || m2.Tags["campaign"] != "vip" || !slicesEqual(m2.To, []string{"b2@example.org"}) {
			t.Fatalf("bulk entries at SES: %+v / %+v", m1, m2)
		}
	})

	t.Run("v1 SendEmail, SendRawEmail, GetSendQuota", func(t *testing.T) {
		out, err := c1.SendEmail(ctx, &ses.SendEmailInput{Source: aws.String("app@billing.example.com"),
			Destination: &sesv1types.Destination{ToAddresses: []string{"v1@example.org"}},
			Message: &sesv1types.Message{Subject: &sesv1types.Content{Data: aws.String("v1")},
				Body: &sesv1types.Body{Html: &sesv1types.Content{Data: aws.String("<p>v1</p>")}}},
			Tags:                 []sesv1types.MessageTag{{Name: aws.String("campaign"), Value: aws.String("v1")}},
			ConfigurationSetName: aws.String("cs-billing")})
		if err != nil {
			t.Fatal(err)
		}
		if m, ok := sesSrv.Message(aws.ToString(out.MessageId)); !ok || m.Tags["campaign"] != "v1" || m.ConfigurationSet != "cs-billing" {
			t.Fatalf("SES got %+v (%v)", m, ok)
		}
		raw := "From: app@billing.example.com\r\nTo: w@example.org\r\nSubject: raw v1\r\n\r\nbody\r\n"
		ro, err := c1.SendRawEmail(ctx, &ses.SendRawEmailInput{RawMessage: &sesv1types.RawMessage{Data: []byte(raw)}})
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := sesSrv.Message(aws.ToString(ro.MessageId)); !ok {
			t.Fatalf("MessageId %q is not SES's", aws.ToString(ro.MessageId))
		}
		// 3 + 5 (templates, bulk) + 2 (v1) sent, and the unknown
		// template's recipient: admitted (counted) before SES refused it.
		q, err := c1.GetSendQuota(ctx, &ses.GetSendQuotaInput{})
		if err != nil || q.Max24HourSend != 5000 || q.MaxSendRate != 1000 || q.SentLast24Hours != 11 {
			t.Fatalf("GetSendQuota: %+v, %v", q, err)
		}
		var rej *sesv1types.MessageRejected
		if _, err := c1.SendRawEmail(ctx, &ses.SendRawEmailInput{RawMessage: &sesv1types.RawMessage{
			Data: []byte("From: x@other.example.com\r\nTo: w@example.org\r\nSubject: s\r\n\r\nb\r\n")}}); !errors.As(err, &rej) {
			t.Fatalf("foreign identity: %v", err)
		}
		if _, err := c1.SendRawEmail(ctx, &ses.SendRawEmailInput{SourceArn: aws.String("arn:aws:ses:us-east-1:1:identity/x"),
			RawMessage: &sesv1types.RawMessage{Data: []byte(raw)}}); apiCode(err) != "InvalidParameterValue" || !strings.Contains(err.Error(), "SourceArn") {
			t.Fatalf("SourceArn: %v", err)
		}
		if _, err := c1.ListIdentities(ctx, &ses.ListIdentitiesInput{}); apiCode(err) != "InvalidAction" {
			t.Fatalf("unknown action: %v", err)
		}
	})

	t.Run("a key revoked through the admin API is refused on every replica within 1s", func(t *testing.T) {
		st, body := adminCall(t, g1.adminAddr, adminTok, "POST", "/v1/tokens", map[string]string{"tenant": "billing", "kind": "aws"})
		if st != 201 || body["kind"] != "aws" || body["token"] != nil {
			t.Fatalf("mint: %d %v", st, body)
		}
		k := awsKey{id: body["access_key_id"].(string), secret: body["secret_access_key"].(string)}
		for _, g := range []*gatewayProc{g1, g2} {
			within(t, 2*time.Second, "minted AWS key accepted on "+g.httpAddr, func() bool {
				_, err := v2Client(g.httpAddr, k, region, nil).GetAccount(ctx, &sesv2.GetAccountInput{})
				return err == nil
			})
		}
		if st, body := adminCall(t, g1.adminAddr, adminTok, "POST", "/v1/tokens/"+body["key_id"].(string)+"/revoke", map[string]string{}); st != 200 {
			t.Fatalf("revoke: %d %v", st, body)
		}
		revoked := time.Now()
		for _, g := range []*gatewayProc{g1, g2} {
			within(t, time.Second-time.Since(revoked), "revoked AWS key refused on "+g.httpAddr, func() bool {
				_, err := v2Client(g.httpAddr, k, region, nil).SendEmail(ctx, simple("app@billing.example.com", "a@example.org"))
				return apiCode(err) == "UnrecognizedClientException"
			})
		}
		t.Logf("revoked AWS key refused on both replicas %v after the revoke call", time.Since(revoked))
	})

	// The signature failures go to g2: each is a failed attempt from this
	// address, and the throttle is per process.
	t.Run("signature failures", func(t *testing.T) {
		wrong := billing
		wrong.secret = strings.Repeat("x", 40)
		unknown := awsKey{id: "SGAWSKAAAAAAAAAA", secret: billing.secret}
		send := func(c *sesv2.Client) error {
			_, err := c.SendEmail(ctx, simple("app@billing.example.com", "a@example.org"))
			return err
		}
		before := len(sesSrv.Sent())
		for _, tc := range []struct {
			name, code, inMsg string
			err               error
		}{
			{"wrong secret", "SignatureDoesNotMatch", "", send(v2Client(g2.httpAddr, wrong, region, nil))},
			{"unknown key", "UnrecognizedClientException", "", send(v2Client(g2.httpAddr, unknown, region, nil))},
			{"skewed clock", "InvalidSignatureException", "Signature expired", send(v2Client(g2.httpAddr, billing, region, &signer{skew: -10 * time.Minute}))},
			{"wrong region", "SignatureDoesNotMatch", "eu-west-1", send(v2Client(g2.httpAddr, billing, "eu-west-1", nil))},
			{"wrong service", "SignatureDoesNotMatch", "'s3'", send(v2Client(g2.httpAddr, billing, region, &signer{service: "s3"}))},
			{"v1 wrong secret", "SignatureDoesNotMatch", "", func() error {
				_, err := v1Client(g2.httpAddr, wrong, region, nil).GetSendQuota(ctx, &ses.GetSendQuotaInput{})
				return err
			}()},
			{"v1 unknown key", "InvalidClientTokenId", "", func() error {
				_, err := v1Client(g2.httpAddr, unknown, region, nil).GetSendQuota(ctx, &ses.GetSendQuotaInput{})
				return err
			}()},
			{"v1 skewed clock", "RequestExpired", "", func() error {
				_, err := v1Client(g2.httpAddr, billing, region, &signer{skew: 10 * time.Minute}).GetSendQuota(ctx, &ses.GetSendQuotaInput{})
				return err
			}()},
		} {
			if apiCode(tc.err) != tc.code || !strings.Contains(tc.err.Error(), tc.inMsg) {
				t.Errorf("%s: %v, want %s (%q)", tc.name, tc.err, tc.code, tc.inMsg)
			}
		}
		if n := len(sesSrv.Sent()) - before; n != 0 {
			t.Fatalf("%d messages reached SES with a bad signature", n)
		}
		// The right key still passes from the same address.
		if err := send(v2Client(g2.httpAddr, billing, region, nil)); err != nil {
			t.Fatalf("right key after the failures: %v", err)
		}
		// Wrong secrets are throttled like wrong tokens: within the
		// burst (10 failures per key id and source), answers turn 429.
		var tooMany *types.TooManyRequestsException
		throttled := false
		for i := 0; i < 12 && !throttled; i++ {
			throttled = errors.As(send(v2Client(g2.httpAddr, wrong, region, nil)), &tooMany)
		}
		if !throttled {
			t.Fatal("wrong secrets were never throttled")
		}
	})
}

func slicesEqual(a, b []string) bool {
	return strings.Join(a, ",") == strings.Join(b, ",")
}
