package gateway

import (
	"net"
	"net/netip"
	"testing"
)

func TestSourceKey(t *testing.T) {
	tests := []struct {
		addr, want string // "" for the zero Addr / invalid Prefix
	}{
		{"192.0.2.7", "192.0.2.7/32"},
		{"::ffff:192.0.2.7", "192.0.2.7/32"},
		{"2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"},
		{"2001:db8:1:2:bbbb::9", "2001:db8:1:2::/64"},
		{"2001:db8:1:3::1", "2001:db8:1:3::/64"},
		{"fe80::1%eth0", "fe80::/64"},
		{"::1", "::/64"},
		{"", ""},
	}
	for _, tt := range tests {
		var a netip.Addr
		if tt.addr != "" {
			a = netip.MustParseAddr(tt.addr)
		}
		got := SourceKey(a)
		if (tt.want == "" && got.IsValid()) || (tt.want != "" && got.String() != tt.want) {
			t.Errorf("SourceKey(%q) = %v, want %q", tt.addr, got, tt.want)
		}
	}
}

func TestClientAddr(t *testing.T) {
	tests := []struct {
		addr net.Addr
		want string // "" for the zero Addr
	}{
		{&net.TCPAddr{IP: net.ParseIP("192.0.2.7"), Port: 1}, "192.0.2.7"},
		{&net.TCPAddr{IP: net.ParseIP("::ffff:192.0.2.7"), Port: 1}, "192.0.2.7"},
		{&net.TCPAddr{IP: net.ParseIP("2001:db8::1"), Port: 1}, "2001:db8::1"},
		{&net.UDPAddr{IP: net.ParseIP("192.0.2.8"), Port: 1}, "192.0.2.8"},
		{&net.UnixAddr{Name: "/run/sesgate.sock", Net: "unix"}, ""},
		{nil, ""},
	}
	for _, tt := range tests {
		got := ClientAddr(tt.addr)
		if (tt.want == "" && got.IsValid()) || (tt.want != "" && got.String() != tt.want) {
			t.Errorf("ClientAddr(%v) = %v, want %q", tt.addr, got, tt.want)
		}
	}
}
