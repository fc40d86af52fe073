package sesapi

import (
	"context"
	"encoding/base64"
	"encoding/xml"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"sort"
	"strconv"

	"github.com/sesgate/sesgate/gateway"
)

// maxV1Params bounds the form's parameters (recipients, tags, ...).
const maxV1Params = 1000

// serveV1 serves the SES v1 query API: POST / with a form body.
func (h *Handler) serveV1(w http.ResponseWriter, r *http.Request, c *call) {
	out, err := h.v1(r, c)
	if err != nil {
		h.o.Pipeline.Refused(c.tenant, err)
		writeV1Error(w, c.id, fromError(err))
		return
	}
	w.Header().Set("X-Amzn-RequestId", c.id)
	writeXML(w, http.StatusOK, out)
}

func (h *Handler) v1(r *http.Request, c *call) (any, error) {
	if r.Method != http.MethodPost {
		return nil, unknownOperation(r)
	}
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/x-www-form-urlencoded" {
		return nil, gateway.Errorf(gateway.CodeMalformed, "the SES query API takes an application/x-www-form-urlencoded body")
	}
	if r.URL.RawQuery != "" {
		return nil, gateway.Errorf(gateway.CodeMalformed, "parameters go in the body, not the query string")
	}
	form, err := url.ParseQuery(string(c.body))
	if err != nil || len(form) > maxV1Params {
		return nil, gateway.Errorf(gateway.CodeMalformed, "invalid form body")
	}
	c.body = nil
	p := v1Params{form: form, used: map[string]bool{}}
	action := p.one("Action")
	p.one("Version")
	var out any
	switch action {
	case "SendEmail":
		out, err = h.sendEmailV1(r.Context(), c, &p)
	case "SendRawEmail":
		out, err = h.sendRawEmailV1(r.Context(), c, &p)
	case "GetSendQuota":
		out, err = h.getSendQuotaV1(r.Context(), c, &p)
	default:
		return nil, &sesError{code: gateway.CodeMalformed, Status: http.StatusBadRequest, V2: "UnknownOperationException", V1: "InvalidAction", V1Status: http.StatusBadRequest,
			Msg: fmt.Sprintf("sesgate implements SendEmail, SendRawEmail and GetSendQuota only; not %q", clip(action))}
	}
	if err != nil {
		return nil, err
	}
	return out, nil
}

// v1Params reads a form and remembers what was read, so that a parameter
// sesgate does not know is refused (unused), never ignored.
type v1Params struct {
	form url.Values
	used map[string]bool
}

func (p *v1Params) one(name string) string {
	p.used[name] = true
	return p.form.Get(name)
}

func (p *v1Params) has(name string) bool { _, ok := p.form[name]; return ok }

// list reads prefix.member.1, .2, ... in order.
func (p *v1Params) list(prefix string) []string {
	var out []string
	for i := 1; ; i++ {
		k := prefix + ".member." + strconv.Itoa(i)
		if !p.has(k) {
			return out
		}
		out = append(out, p.one(k))
	}
}

// unused refuses the first parameter nobody read; the policy's parameters
// get their own message.
func (p *v1Params) unused() error {
	var names []string
	for k := range p.form {
		if !p.used[k] {
			names = append(names, k)
		}
	}
	if len(names) == 0 {
		return nil
	}
	sort.Strings(names)
	switch n := names[0]; n {
	case "SourceArn", "FromArn", "ReturnPathArn", "ReturnPath":
		return gateway.Errorf(gateway.CodeBadParameter, "%s is set by sesgate's policy, not by the app: remove it", n)
	default:
		return gateway.Errorf(gateway.CodeBadParameter, "parameter %q is not supported by sesgate", clip(n))
	}
}

// common reads what SendEmail and SendRawEmail share: tags and the
// configuration set.
func (p *v1Params) common(env *gateway.Envelope) {
	env.SES.ConfigurationSet = p.one("ConfigurationSetName")
	for i := 1; p.has("Tags.member." + strconv.Itoa(i) + ".Name"); i++ {
		k := "Tags.member." + strconv.Itoa(i)
		env.SES.Tags = append(env.SES.Tags, gateway.MessageTag{Name: p.one(k + ".Name"), Value: p.one(k + ".Value")})
	}
}

type v1Metadata struct {
	RequestID string `xml:"RequestId"`
}

type v1SendResponse struct {
	XMLName  xml.Name
	NS       string `xml:"xmlns,attr"`
	Result   v1SendResult
	Metadata v1Metadata `xml:"ResponseMetadata"`
}

type v1SendResult struct {
	XMLName   xml.Name
	MessageID string `xml:"MessageId"`
}

func sendResponse(action, reqID, messageID string) v1SendResponse {
	return v1SendResponse{XMLName: xml.Name{Local: action + "Response"}, NS: v1Namespace,
		Result:   v1SendResult{XMLName: xml.Name{Local: action + "Result"}, MessageID: messageID},
		Metadata: v1Metadata{RequestID: reqID}}
}

func (h *Handler) sendEmailV1(ctx context.Context, c *call, p *v1Params) (any, error) {
	env := &gateway.Envelope{Tenant: c.tenant, Source: c.src, Via: "ses-v1", ID: c.id}
	p.common(env)
	from := p.one("Source")
	dest := v2Destination{ToAddresses: p.list("Destination.ToAddresses"), CcAddresses: p.list("Destination.CcAddresses"), BccAddresses: p.list("Destination.BccAddresses")}
	replyTo := p.list("ReplyToAddresses")
	s := &v2Simple{Body: &struct{ Text, Html *v2Content }{}}
	if p.has("Message.Subject.Data") {
		s.Subject = &v2Content{Data: p.one("Message.Subject.Data"), Charset: p.one("Message.Subject.Charset")}
	}
	if p.has("Message.Body.Text.Data") {
		s.Body.Text = &v2Content{Data: p.one("Message.Body.Text.Data"), Charset: p.one("Message.Body.Text.Charset")}
	}
	if p.has("Message.Body.Html.Data") {
		s.Body.Html = &v2Content{Data: p.one("Message.Body.Html.Data"), Charset: p.one("Message.Body.Html.Charset")}
	}
	if err := p.unused(); err != nil {
		return nil, err
	}
	if err := h.content(env, &v2EmailContent{Simple: s}, from, dest, replyTo); err != nil {
		return nil, err
	}
	res, err := h.submit(ctx, env)
	if err != nil {
		return nil, err
	}
	return sendResponse("SendEmail", c.id, res.ProviderID), nil
}

func (h *Handler) sendRawEmailV1(ctx context.Context, c *call, p *v1Params) (any, error) {
	env := &gateway.Envelope{Tenant: c.tenant, Source: c.src, Via: "ses-v1", ID: c.id}
	p.common(env)
	from := p.one("Source")
	dest := v2Destination{ToAddresses: p.list("Destinations")}
	raw, err := base64.StdEncoding.DecodeString(p.one("RawMessage.Data"))
	if err != nil {
		return nil, gateway.Errorf(gateway.CodeMalformed, "RawMessage.Data is not base64")
	}
	if err := p.unused(); err != nil {
		return nil, err
	}
	if err := h.content(env, &v2EmailContent{Raw: &struct{ Data []byte }{raw}}, from, dest, nil); err != nil {
		return nil, err
	}
	res, err := h.submit(ctx, env)
	if err != nil {
		return nil, err
	}
	return sendResponse("SendRawEmail", c.id, res.ProviderID), nil
}

type v1QuotaResponse struct {
	XMLName xml.Name `xml:"GetSendQuotaResponse"`
	NS      string   `xml:"xmlns,attr"`
	Result  struct {
		Max24HourSend   float64
		MaxSendRate     float64
		SentLast24Hours float64
	} `xml:"GetSendQuotaResult"`
	Metadata v1Metadata `xml:"ResponseMetadata"`
}

func (h *Handler) getSendQuotaV1(ctx context.Context, c *call, p *v1Params) (any, error) {
	if err := p.unused(); err != nil {
		return nil, err
	}
	q, err := h.quota(ctx, c.tenant)
	if err != nil {
		return nil, err
	}
	out := v1QuotaResponse{NS: v1Namespace, Metadata: v1Metadata{RequestID: c.id}}
	out.Result.Max24HourSend, out.Result.MaxSendRate, out.Result.SentLast24Hours = q.max24, q.rate, q.sent
	return out, nil
}
