package gateway

import (
	"bytes"
	"net/mail"
	"slices"
	"strings"
	"testing"
)

// The seed corpora in testdata/fuzz/FuzzXxx are real traffic: messages as
// mail clients and libraries write them (plain, multipart/alternative,
// attachments, inline images, 8-bit, encoded words, forwarded with Resent-*
// and trace fields, DSNs, calendar invites), messages composed by the HTTP
// API from JSON requests, and what reached the local SES server through the
// whole gateway; addresses taken from those messages plus the forms SMTP
// clients send.

// FuzzPrepareMessage: never a panic; a refusal is always bad_content (or
// bad_parameter, for an X-SES-* field); an
// accepted message keeps no Bcc, Resent-Bcc, Return-Path or X-SES-* field,
// has only CRLF line endings, no line over 998 characters, no 8-bit byte
// unless allowed, validated From and originator addresses, and preparing it
// again changes nothing.
func FuzzPrepareMessage(f *testing.F) {
	f.Add([]byte("From: a@example.com\r\nBcc: b@example.com\r\n\r\nbody\r\n"), false)
	f.Add([]byte("From: a@example.com\n bcc\nBcc: x\n\n"), true)
	f.Fuzz(func(t *testing.T, raw []byte, eightBit bool) {
		m, err := PrepareMessage(raw, eightBit)
		if err != nil {
			if c := AsError(err).Code; c != CodeBadContent && c != CodeBadParameter {
				t.Fatalf("unexpected code %v", err)
			}
			return
		}
		if len(m.From) == 0 {
			t.Fatal("accepted without From")
		}
		hdr, _, ok := bytes.Cut(m.Data, []byte("\r\n\r\n"))
		if !ok {
			t.Fatalf("no end of header section: %q", m.Data)
		}
		for _, line := range bytes.Split(hdr, []byte("\r\n")) {
			if len(line) == 0 || line[0] == ' ' || line[0] == '\t' {
				continue
			}
			name, _, _ := bytes.Cut(line, []byte(":"))
			n := strings.ToLower(string(name))
			if n == "bcc" || n == "resent-bcc" || n == "return-path" || strings.HasPrefix(n, "x-ses-") {
				t.Fatalf("%s header survived: %q", name, m.Data)
			}
		}
		for i, line := range bytes.Split(m.Data, []byte("\r\n")) {
			if bytes.ContainsAny(line, "\r\n\x00") || len(line) > MaxLineLength {
				t.Fatalf("line %d: %q", i, line)
			}
			if !eightBit && slices.ContainsFunc(line, func(c byte) bool { return c >= 0x80 }) {
				t.Fatalf("8-bit line %d accepted without 8BITMIME", i)
			}
		}
		addrs := slices.Clone(m.From)
		for _, o := range m.Originators {
			addrs = append(addrs, o.Addr)
		}
		for _, a := range addrs {
			if got, err := ParseAddress(a); err != nil || got != a {
				t.Fatalf("address %q not valid: %q, %v", a, got, err)
			}
		}
		again, err := PrepareMessage(m.Data, eightBit)
		if err != nil {
			t.Fatalf("prepared message refused when prepared again: %v\n%q", err, m.Data)
		}
		if !bytes.Equal(again.Data, m.Data) || !slices.Equal(again.From, m.From) || !slices.Equal(again.Originators, m.Originators) {
			t.Fatalf("preparing twice changed the message:\n%q\n%q", m.Data, again.Data)
		}
	})
}

// FuzzParseAddress: an accepted address is at most 254 characters, has one
// @, a lowercased domain, is its own normalization, and survives net/mail
// (as an angle address and written back by mail.Address.String), as the
// message parser and the composer use it; a refusal is always
// invalid_address.
func FuzzParseAddress(f *testing.F) {
	f.Add("a@example.com")
	f.Add("Bob.Smith+tag@Mail.Example.COM")
	f.Fuzz(func(t *testing.T, s string) {
		a, err := ParseAddress(s)
		if err != nil {
			if ge := AsError(err); ge.Code != CodeInvalidAddress {
				t.Fatalf("ParseAddress(%q): %v, want invalid_address", s, err)
			}
			return
		}
		if len(a) > MaxAddressLength || strings.Count(a, "@") != 1 || !HeaderValueOK(a) {
			t.Fatalf("ParseAddress(%q) = %q", s, a)
		}
		local, domain, _ := strings.Cut(a, "@")
		if domain != strings.ToLower(domain) || !strings.EqualFold(s, a) || !strings.HasPrefix(s, local+"@") {
			t.Fatalf("ParseAddress(%q) = %q: only the domain's case may change", s, a)
		}
		if again, err := ParseAddress(a); err != nil || again != a {
			t.Fatalf("ParseAddress(%q) = %q, but ParseAddress(%q) = %q, %v", s, a, a, again, err)
		}
		p, err := mail.ParseAddress("<" + a + ">")
		if err != nil || p.Address != a {
			t.Fatalf("net/mail does not read <%s> back: %v, %v", a, p, err)
		}
		w := (&mail.Address{Name: "Name", Address: a}).String()
		if p, err := mail.ParseAddress(w); err != nil || p.Address != a {
			t.Fatalf("net/mail does not read its own %q back: %v, %v", w, p, err)
		}
	})
}
