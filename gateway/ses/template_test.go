package ses

import (
	"context"
	"fmt"
	"testing"

	"github.com/sesgate/sesgate/gateway"
	"github.com/sesgate/sesgate/internal/sestest"
)

// TestSendTemplate: a template envelope reaches SES (sestest) as Template
// content with the From mailbox, its To/Cc/Bcc layout kept to the
// envelope's recipients (a dropped one gone, one outside the layout in
// Bcc), its data and headers; an unknown template is
// CodeTemplateNotFound, not the gateway's own configuration alert.
func TestSendTemplate(t *testing.T) {
	srv, url := startSES(t, sestest.Options{Templates: []string{"welcome"}})
	sink := newSink(t, url, ClientOptions{}, Options{})
	ten := &gateway.Tenant{ID: "acme"}
	env := &gateway.Envelope{ID: "id-1", Tenant: ten, From: "app@example.com", Recipients: []string{"a@example.net", "c@example.net", "extra@example.net"},
		Template: &gateway.Template{From: "App <app@example.com>", Name: "welcome", Data: `{"n":1}`,
			Headers: []gateway.TemplateHeader{{Name: "X-Campaign", Value: "spring"}},
			To:      []string{"a@example.net", "dropped@example.net"}, Cc: []string{"c@example.net"}, ReplyTo: []string{"help@example.com"}}}
	id, err := sink.Send(context.Background(), env)
	if err != nil {
		t.Fatal(err)
	}
	m, ok := srv.Message(id)
	if !ok || m.Template == nil {
		t.Fatalf("SES got %+v", m)
	}
	got := fmt.Sprint(m.From, m.To, m.Cc, m.Bcc, m.ReplyTo, m.Template.TemplateName, m.Template.TemplateData, m.Template.Headers)
	want := fmt.Sprint("app@example.com", []string{"a@example.net"}, []string{"c@example.net"}, []string{"extra@example.net"},
		[]string{"help@example.com"}, "welcome", `{"n":1}`, []struct{ Name, Value string }{{"X-Campaign", "spring"}})
	if got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
	env.Template.Name = "nope"
	if _, err := sink.Send(context.Background(), env); gateway.AsError(err).Code != gateway.CodeTemplateNotFound {
		t.Fatalf("unknown template: %v", err)
	}
}
