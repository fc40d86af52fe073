package gateway

import (
	"net"
	"net/netip"
)

// SourceKey is the source a client is counted as by the per-source limits
// and log budgets: its IPv4 address (an IPv4-mapped IPv6 address as IPv4),
// or the /64 of its IPv6 address, since one host usually holds a whole
// /64. It is the zero (invalid) Prefix for the zero Addr.
func SourceKey(a netip.Addr) netip.Prefix {
	a = a.Unmap()
	bits := a.BitLen()
	if a.Is6() {
		bits = 64
	}
	p, err := a.Prefix(bits)
	if err != nil {
		return netip.Prefix{}
	}
	return p
}

// ClientAddr is the IP address of a connection's remote end (IPv4-mapped
// addresses as IPv4); the zero Addr when it is not an IP address, such as
// a Unix socket's.
func ClientAddr(a net.Addr) netip.Addr {
	switch a := a.(type) {
	case *net.TCPAddr:
		ip, _ := netip.AddrFromSlice(a.IP)
		return ip.Unmap()
	case nil:
		return netip.Addr{}
	}
	return RemoteAddr(a.String())
}

// RemoteAddr is the IP address of an "ip:port" remote address, such as
// http.Request.RemoteAddr (IPv4-mapped addresses as IPv4); the zero Addr
// when it cannot be parsed, which a tenant with source networks then
// refuses.
func RemoteAddr(remote string) netip.Addr {
	ap, err := netip.ParseAddrPort(remote)
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}
