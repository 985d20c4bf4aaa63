package httpapi

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/mcp-task-relay/mcp-task-relay/relaytype"
)

// CodeRequestTimeout is the error code of a request whose body did not
// arrive within Config.ReadTimeout. relaytype has no code for it:
// only this API returns it.
const CodeRequestTimeout relaytype.ErrorCode = "REQUEST_TIMEOUT"

// Sentinel errors of New for allow-lists it cannot use.
var (
	// ErrBadAllowedHost: an AllowedHosts or BindHost entry is not a host
	// name or address with an optional port.
	ErrBadAllowedHost = errors.New("not a host or host:port")
	// ErrBadAllowedOrigin: an AllowedOrigins entry is not an origin.
	ErrBadAllowedOrigin = errors.New("not an origin (http[s]://host[:port])")
)

// loopbackNames are the Host names every loopback listener answers to.
var loopbackNames = [...]string{"localhost", "127.0.0.1", "::1"}

// hostRule is one accepted Host: a name, at port, or at the listener's
// own port when port is empty.
type hostRule struct {
	name, port string
}

// guard is what every request is checked against before it is routed.
type guard struct {
	bindHost string     // normalised Config.BindHost, or ""
	hosts    []hostRule // Config.AllowedHosts
	origins  map[string]bool
}

func newGuard(c Config) (*guard, error) {
	g := &guard{origins: map[string]bool{}}
	if c.BindHost != "" {
		r, err := parseHostRule(c.BindHost)
		if err != nil {
			return nil, fmt.Errorf("httpapi: BindHost %q: %w", c.BindHost, err)
		}
		// 0.0.0.0 or [::] names no host.
		if ip, err := netip.ParseAddr(r.name); err != nil || !ip.IsUnspecified() {
			g.bindHost = r.name
		}
	}
	for i, h := range c.AllowedHosts {
		r, err := parseHostRule(h)
		if err != nil {
			return nil, fmt.Errorf("httpapi: AllowedHosts[%d] %q: %w", i, h, err)
		}
		g.hosts = append(g.hosts, r)
	}
	for i, o := range c.AllowedOrigins {
		n, ok := normalOrigin(o)
		if !ok {
			return nil, fmt.Errorf("httpapi: AllowedOrigins[%d] %q: %w", i, o, ErrBadAllowedOrigin)
		}
		g.origins[n] = true
	}
	return g, nil
}

// parseHostRule parses "name", "name:port", "[v6]:port" or a bare IPv6
// address.
func parseHostRule(s string) (hostRule, error) {
	name, port, ok := splitHost(s)
	if !ok || name == "" || strings.ContainsAny(name, "/@?#%* \t") {
		return hostRule{}, ErrBadAllowedHost
	}
	return hostRule{name: name, port: port}, nil
}

// splitHost splits a Host header (or an allow-list entry) into a
// lowercase name without brackets or trailing dot and a port ("" when
// absent). ok is false when the port is not a number from 1 to 65535.
func splitHost(h string) (name, port string, ok bool) {
	h = strings.ToLower(strings.TrimSpace(h))
	if n, p, err := net.SplitHostPort(h); err == nil {
		name, port = n, p
		if v, err := strconv.Atoi(p); err != nil || v < 1 || v > 65535 || p != strconv.Itoa(v) {
			return "", "", false
		}
	} else {
		name = strings.TrimSuffix(strings.TrimPrefix(h, "["), "]")
	}
	if ip, err := netip.ParseAddr(name); err == nil {
		name = ip.Unmap().String()
	}
	return strings.TrimSuffix(name, "."), port, true
}

// normalOrigin returns the serialised form of an origin
// ("http://localhost:6274": lowercase, no default port), or ok false
// when o is not an http or https origin ("null" is not).
func normalOrigin(o string) (string, bool) {
	u, err := url.Parse(strings.TrimSpace(o))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil ||
		(u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" {
		return "", false
	}
	name, port, ok := splitHost(u.Host)
	if !ok || name == "" {
		return "", false
	}
	if (u.Scheme == "http" && port == "80") || (u.Scheme == "https" && port == "443") {
		port = ""
	}
	host := name
	if strings.Contains(name, ":") {
		host = "[" + name + "]"
	}
	if port != "" {
		host += ":" + port
	}
	return u.Scheme + "://" + host, true
}

// listenerKey is the context key of the address Serve listens on.
type listenerKey struct{}

// listenerOf returns the address of the listener r came in on, and the
// local address of its connection: from Serve, or from the connection
// alone when the handler is served some other way (httptest).
func listenerOf(r *http.Request) (listener, local net.Addr) {
	local, _ = r.Context().Value(http.LocalAddrContextKey).(net.Addr)
	listener, _ = r.Context().Value(listenerKey{}).(net.Addr)
	if listener == nil {
		listener = local
	}
	return listener, local
}

// check returns the error response for a request that must not reach any
// route: a Host this relay does not answer to (DNS rebinding), a foreign
// Origin, a POST whose body is not JSON.
func (g *guard) check(r *http.Request) *apiError {
	if !g.hostAllowed(r) {
		return &apiError{Status: http.StatusForbidden, Code: relaytype.CodeForbidden, Field: "Host",
			Message: fmt.Sprintf("Host %q is not a name of this relay: use http://127.0.0.1 or http://localhost at its port, or add the name to askAnswer.allowedHosts", r.Host)}
	}
	if origins := r.Header.Values("Origin"); len(origins) > 0 {
		if len(origins) > 1 || !g.originAllowed(r, origins[0]) {
			return &apiError{Status: http.StatusForbidden, Code: relaytype.CodeForbidden, Field: "Origin",
				Message: fmt.Sprintf("Origin %q may not use this relay: add it to askAnswer.allowedOrigins to allow it", strings.Join(origins, ", "))}
		}
	}
	if r.Method == http.MethodPost {
		// A POST without a body (cancel) has nothing to type; any other
		// must say it is JSON, which no browser page can send without
		// a CORS preflight that this API never grants.
		ct := r.Header.Get("Content-Type")
		if strings.TrimSpace(ct) != "" || r.ContentLength != 0 {
			if e := checkJSON(ct); e != nil {
				return e
			}
		}
	}
	return nil
}

// hostAllowed reports whether r's Host header names this relay (see
// hostOK).
func (g *guard) hostAllowed(r *http.Request) bool {
	ok, _ := g.hostOK(r, r.Host)
	return ok
}

// hostOK reports whether host (a Host header, or the host of an Origin)
// names this relay. On a loopback listener that is the loopback names,
// the listener's address and BindHost at the connection's port, and
// AllowedHosts; on any other listener every host is, unless AllowedHosts
// is set. checked is false when no check applies: requests that did not
// come over TCP (a Unix socket, a handler called in process) cannot come
// from a browser.
func (g *guard) hostOK(r *http.Request, host string) (ok, checked bool) {
	listener, local := listenerOf(r)
	ln, isTCP := listener.(*net.TCPAddr)
	if !isTCP {
		return true, false
	}
	loopback := isLoopback(listener)
	if !loopback && len(g.hosts) == 0 {
		return true, false
	}
	port := strconv.Itoa(ln.Port)
	if l, ok := local.(*net.TCPAddr); ok {
		port = strconv.Itoa(l.Port)
	}
	name, hp, valid := splitHost(host)
	if !valid || name == "" {
		return false, true
	}
	if hp == "" {
		hp = "80"
	}
	if hp == port {
		if loopback && slices.Contains(loopbackNames[:], name) {
			return true, true
		}
		if ip, ok := netip.AddrFromSlice(ln.IP); ok && !ip.IsUnspecified() && name == ip.Unmap().String() {
			return true, true
		}
		if g.bindHost != "" && name == g.bindHost {
			return true, true
		}
	}
	for _, h := range g.hosts {
		if h.name == name && (h.port == hp || (h.port == "" && hp == port)) {
			return true, true
		}
	}
	return false, true
}

// originAllowed reports whether a request from a browser page of origin o
// may be served: o is in AllowedOrigins, or o is the relay's own: the
// request's scheme and Host, or, where Host is checked, plain http at any
// host that hostOK accepts (http://localhost:PORT on a request to
// 127.0.0.1:PORT).
func (g *guard) originAllowed(r *http.Request, o string) bool {
	n, ok := normalOrigin(o)
	if !ok {
		return false
	}
	if g.origins[n] {
		return true
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	if self, ok := normalOrigin(scheme + "://" + r.Host); ok && n == self {
		return true
	}
	u, err := url.Parse(n)
	if err != nil || u.Scheme != scheme {
		return false
	}
	host := u.Host
	if u.Port() == "" {
		host = net.JoinHostPort(u.Hostname(), "80")
	}
	ok, checked := g.hostOK(r, host)
	return ok && checked
}

// withListener returns ctx carrying the address Serve listens on.
func withListener(ctx context.Context, addr net.Addr) context.Context {
	return context.WithValue(ctx, listenerKey{}, addr)
}
