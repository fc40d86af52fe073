package webhook

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"syscall"
	"time"
)

// ErrForbiddenAddress is a webhook target in a network that is not
// allowed (loopback, private, link-local, CGNAT, metadata, ...).
var ErrForbiddenAddress = errors.New("webhook target address not allowed")

// blocked are the networks a webhook may not reach unless allowed
// explicitly: loopback, unspecified, private, CGNAT, link-local (and so
// the cloud metadata addresses 169.254.169.254 and fd00:ec2::254, the
// latter in fc00::/7), multicast, and the IPv4 forms inside IPv6.
var blocked = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),
	netip.MustParsePrefix("10.0.0.0/8"),
	netip.MustParsePrefix("100.64.0.0/10"),
	netip.MustParsePrefix("127.0.0.0/8"),
	netip.MustParsePrefix("169.254.0.0/16"),
	netip.MustParsePrefix("172.16.0.0/12"),
	netip.MustParsePrefix("192.0.0.0/24"),
	netip.MustParsePrefix("192.168.0.0/16"),
	netip.MustParsePrefix("198.18.0.0/15"),
	netip.MustParsePrefix("224.0.0.0/3"),
	netip.MustParsePrefix("::/128"),
	netip.MustParsePrefix("::1/128"),
	netip.MustParsePrefix("64:ff9b::/96"),
	netip.MustParsePrefix("fc00::/7"),
	netip.MustParsePrefix("fe80::/10"),
	netip.MustParsePrefix("ff00::/8"),
}

// CheckAddr refuses an address in a blocked network unless one of allow
// contains it.
func CheckAddr(a netip.Addr, allow []netip.Prefix) error {
	a = a.Unmap()
	if slices.ContainsFunc(allow, func(p netip.Prefix) bool { return p.Contains(a) }) {
		return nil
	}
	if !a.IsValid() || slices.ContainsFunc(blocked, func(p netip.Prefix) bool { return p.Contains(a) }) {
		return fmt.Errorf("%w: %s", ErrForbiddenAddress, a)
	}
	return nil
}

// CheckURL checks a webhook URL's form: https, or http when allowHTTP; a
// host; no user info.
func CheckURL(raw string, allowHTTP bool) (*url.URL, error) {
	u, err := url.Parse(raw)
	switch {
	case err != nil || u.Host == "" || u.Hostname() == "":
		return nil, errors.New("not an absolute URL with a host")
	case u.User != nil:
		return nil, errors.New("must not carry user info")
	case u.Scheme == "https":
	case u.Scheme == "http" && allowHTTP:
	case u.Scheme == "http":
		return nil, errors.New("must be https (or allow_http: true)")
	default:
		return nil, errors.New("must be an https URL")
	}
	return u, nil
}

// LookupFunc resolves a host name (net.Resolver.LookupNetIP's shape).
type LookupFunc func(ctx context.Context, host string) ([]netip.Addr, error)

// ClientOptions configure NewClient.
type ClientOptions struct {
	Allow   []netip.Prefix // networks reachable despite the blocked list
	Timeout time.Duration  // the whole request; required
	// Lookup resolves names; default net.DefaultResolver (tests inject
	// names that resolve to forbidden addresses).
	Lookup LookupFunc
}

// NewClient returns the HTTP client of one webhook: no proxy, no
// redirects, every dialled address checked after resolution and again on
// the socket (so a name that resolves differently at dial time, DNS
// rebinding, cannot reach a forbidden address), one timeout for the whole
// request.
func NewClient(o ClientOptions) *http.Client {
	lookup := o.Lookup
	if lookup == nil {
		lookup = func(ctx context.Context, host string) ([]netip.Addr, error) {
			return net.DefaultResolver.LookupNetIP(ctx, "ip", host)
		}
	}
	d := &net.Dialer{
		Timeout: o.Timeout,
		// The last check, on the address actually dialled.
		Control: func(_, address string, _ syscall.RawConn) error {
			ap, err := netip.ParseAddrPort(address)
			if err != nil {
				return fmt.Errorf("%w: %s", ErrForbiddenAddress, address)
			}
			return CheckAddr(ap.Addr(), o.Allow)
		},
	}
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		host, port, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, err
		}
		var ips []netip.Addr
		if ip, err := netip.ParseAddr(host); err == nil {
			ips = []netip.Addr{ip}
		} else if ips, err = lookup(ctx, host); err != nil {
			return nil, err
		}
		var errs []error
		for _, ip := range ips {
			if err := CheckAddr(ip, o.Allow); err != nil {
				errs = append(errs, err)
				continue
			}
			c, err := d.DialContext(ctx, network, net.JoinHostPort(ip.Unmap().String(), port))
			if err == nil {
				return c, nil
			}
			errs = append(errs, err)
		}
		if len(errs) == 0 {
			return nil, fmt.Errorf("%s: no address", host)
		}
		return nil, errors.Join(errs...)
	}
	tr := &http.Transport{
		Proxy:                  nil,
		DialContext:            dial,
		TLSHandshakeTimeout:    o.Timeout,
		ResponseHeaderTimeout:  o.Timeout,
		MaxIdleConnsPerHost:    4,
		IdleConnTimeout:        90 * time.Second,
		MaxResponseHeaderBytes: 16 << 10,
		ForceAttemptHTTP2:      true,
	}
	return &http.Client{
		Transport:     tr,
		Timeout:       o.Timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}
