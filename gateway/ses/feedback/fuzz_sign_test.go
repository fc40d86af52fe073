package feedback

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"testing"
	"time"
)

// FuzzSNSStringToSign builds an SNS message from fuzzed fields (the seeds in
// testdata/fuzz/FuzzSNSStringToSign are the fields of notifications the
// local SES server posted and of subscription messages), signs its string
// to sign as SNS would and checks: the string lists the signed keys of its
// type in byte order, Subject only when present (an empty Subject is not an
// absent one); the message survives a JSON round trip with the same string
// to sign; Verify accepts it; and Verify refuses it once any signed field
// changes (Message, Subject, Timestamp, TopicArn).
func FuzzSNSStringToSign(f *testing.F) {
	f.Add("Notification", "22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324", testTopic, "", false, exBounce, "2026-03-04T05:06:07.890Z", "", "", false)
	f.Add("SubscriptionConfirmation", "165545c9", testTopic, "", false, "You have chosen to subscribe", "2026-03-04T05:06:07.890Z", "tok", "https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription", true)
	good, _ := testKeys()
	fetch := &fetcher{certs: map[string]*x509.Certificate{testCertURL: good.cert}}
	f.Fuzz(func(t *testing.T, typ, id, topic, subject string, hasSubject bool, message, ts, token, subscribeURL string, v1 bool) {
		fields := map[string]any{"Type": typ, "MessageId": id, "TopicArn": topic, "Message": message, "Timestamp": ts,
			"Token": token, "SubscribeURL": subscribeURL, "SigningCertURL": testCertURL}
		if hasSubject {
			fields["Subject"] = subject
		}
		data, err := json.Marshal(fields)
		if err != nil {
			return
		}
		m, err := ParseSNS(data)
		if err != nil {
			return
		}
		s := m.StringToSign()
		keys := []string{"Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"}
		if m.Type == SNSNotification {
			keys = []string{"Message", "MessageId", "Timestamp", "TopicArn", "Type"}
			if m.Subject != nil {
				keys = []string{"Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"}
			}
		}
		want := ""
		for _, k := range keys {
			v := map[string]string{"Message": m.Message, "MessageId": m.MessageID, "SubscribeURL": m.SubscribeURL,
				"Timestamp": m.Timestamp, "Token": m.Token, "TopicArn": m.TopicArn, "Type": m.Type}[k]
			if k == "Subject" {
				v = *m.Subject
			}
			want += k + "\n" + v + "\n"
		}
		if s != want {
			t.Fatalf("string to sign\n%q\nwant\n%q", s, want)
		}
		again, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		m2, err := ParseSNS(again)
		if err != nil || m2.StringToSign() != s {
			t.Fatalf("JSON round trip changed the message: %v", err)
		}

		hash, version := crypto.SHA256, "2"
		if v1 {
			hash, version = crypto.SHA1, "1"
		}
		sig, err := rsa.SignPKCS1v15(rand.Reader, good.key, hash, digestOf(hash, s))
		if err != nil {
			t.Fatal(err)
		}
		m.SignatureVersion, m.Signature = version, base64.StdEncoding.EncodeToString(sig)
		v := NewVerifier(VerifierOptions{Fetcher: fetch, Now: func() time.Time { return good.cert.NotBefore.Add(time.Minute) }})
		if err := v.Verify(context.Background(), m); err != nil {
			t.Fatalf("a correctly signed message is refused: %v", err)
		}
		tampered := []func(c *SNSMessage){
			func(c *SNSMessage) { c.Message += "x" },
			func(c *SNSMessage) { c.Timestamp += "0" },
			func(c *SNSMessage) { c.TopicArn += "x" },
		}
		if m.Type == SNSNotification {
			tampered = append(tampered, func(c *SNSMessage) {
				if c.Subject == nil {
					e := ""
					c.Subject = &e
				} else {
					c.Subject = nil
				}
			})
		}
		for i, change := range tampered {
			c := *m
			change(&c)
			if err := v.Verify(context.Background(), &c); !errors.Is(err, ErrForged) {
				t.Fatalf("change %d verified: %v\n%q", i, err, c.StringToSign())
			}
		}
	})
}
