package feedback

import (
	"strings"
	"testing"
	"time"
)

func FuzzParseSNS(f *testing.F) {
	good, _ := testKeys()
	now := time.Unix(1_700_000_000, 0)
	f.Add([]byte(mustJSON(notification(good, "2", "m-1", testTopic, testCertURL, exBounce, now))))
	f.Add([]byte(mustJSON(subscription(good, SNSSubscriptionConfirmation, testTopic, "https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription", now))))
	f.Add([]byte(`{"Type":"Notification","Subject":null}`))
	f.Add([]byte(`{"Type":"UnsubscribeConfirmation","Message":"\u0000\n"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := ParseSNS(data)
		if err != nil {
			return
		}
		if m.MessageID == "" || m.TopicArn == "" || m.Time().IsZero() {
			t.Fatalf("accepted without required fields: %+v", m)
		}
		s := m.StringToSign()
		if !strings.HasPrefix(s, "Message\n") || !strings.HasSuffix(s, "\nType\n"+m.Type+"\n") {
			t.Fatalf("string to sign %q", s)
		}
		if err := CheckCertURL(m.SigningCertURL, nil); err == nil && !strings.HasPrefix(m.SigningCertURL, "https://sns.") {
			t.Fatalf("cert URL %q passed", m.SigningCertURL)
		}
	})
}

func FuzzParseEvent(f *testing.F) {
	for _, s := range []string{exBounce, exComplaint, exDelivery, exSend, exReject, exDelay, exRendering, exOpen, exSuppressed, exTransient, exUndetermined, exNotSpam, exAmbiguousTags} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		ev, err := ParseEvent(data)
		if err != nil {
			return
		}
		if ev.SESMessageID == "" || ev.MailTime.IsZero() || ev.EventTime.IsZero() {
			t.Fatalf("accepted without id or times: %+v", ev)
		}
		if len(ev.Recipients) > MaxEventRecipients {
			t.Fatalf("%d recipients", len(ev.Recipients))
		}
		if ev.HardBounces() > len(ev.Recipients) || ev.Complaints() > len(ev.Recipients) {
			t.Fatal("more bounces than recipients")
		}
		if (ev.Type == TypeBounce || ev.Type == TypeComplaint) && len(ev.Recipients) == 0 {
			t.Fatal("bounce or complaint without recipients")
		}
		for _, r := range ev.Recipients {
			if r.Address == "" || len(r.Address) > maxFieldLength {
				t.Fatalf("recipient %q", r.Address)
			}
		}
	})
}
