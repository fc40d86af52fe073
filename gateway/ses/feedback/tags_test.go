package feedback

import (
	"maps"
	"testing"
)

// TestEventTagsAndSubject: the message's own tags are kept (SES's ses:*
// and the sink's sesgate-* are not), and the subject from the common
// headers.
func TestEventTagsAndSubject(t *testing.T) {
	ev, err := ParseEvent([]byte(`{"eventType":"Delivery","mail":{"timestamp":"2026-03-02T10:00:00.000Z","messageId":"m1",
"tags":{"ses:source-ip":["127.0.0.1"],"sesgate-tenant":["acme"],"sesgate-id":["g1"],"campaign":["spring"],"two":["a","b"]},
"commonHeaders":{"subject":"Your receipt"}},"delivery":{"timestamp":"2026-03-02T10:00:01.000Z","recipients":["a@example.com"]}}`))
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string]string{"campaign": "spring"}; !maps.Equal(ev.Tags, want) {
		t.Fatalf("tags %v, want %v", ev.Tags, want)
	}
	if ev.Subject != "Your receipt" || ev.Tenant != "acme" || ev.GatewayID != "g1" {
		t.Fatalf("subject %q tenant %q id %q", ev.Subject, ev.Tenant, ev.GatewayID)
	}
}
