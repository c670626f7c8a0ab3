// Package redact hides secrets in what the programs print: the effective
// configuration at start, errors, and every log line (ReplaceAttr). It
// knows the shapes secrets take in this project's settings and in the
// errors of its clients: URL user info (postgres://u:pw@h), key/value DSNs
// and query strings (password=..., sslpassword=..., token=...),
// Authorization headers. It never reads a secret and never logs: callers
// pass it what they are about to print.
package redact

import (
	"io"
	"log/slog"
	"regexp"
	"strings"
)

// Mark replaces every secret.
const Mark = "[redacted]"

// Secret is Mark for a secret that is set and "" for one that is not, so
// that a start log says whether a secret was given without showing it.
func Secret(s string) string {
	if s == "" {
		return ""
	}
	return Mark
}

var (
	// userinfo is the password of a URL's user info: scheme://user:pw@.
	// The password may hold anything but '@' and white space (a URL with
	// an unescaped '@' in its password is invalid anyway; the last '@'
	// before the host is the one that counts, so the match is greedy up
	// to it).
	userinfo = regexp.MustCompile(`([a-zA-Z][a-zA-Z0-9+.-]*://[^:/?#@\s]*:)[^\s]*@`)
	// keyValue is a secret parameter of a DSN (password='a b'), a query
	// string (?password=x&) or a configuration line (sasl.password=x).
	// The key may be qualified (sasl.password, STOCK_KAFKA_SASL_PASSWORD,
	// sslpassword, client_secret, access_token).
	keyValue = regexp.MustCompile(`(?i)((?:^|[^a-z0-9_.-])[a-z0-9_.-]*(?:password|passwd|pwd|secret|token|api[_-]?key|apikey)\s*=\s*)('(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"|[^\s&;,'"]*)`)
	// auth is the credential of an Authorization header.
	auth = regexp.MustCompile(`(?i)\b(bearer|basic)(\s+)[a-z0-9._~+/=-]+`)
)

// Text is s with every secret it recognises replaced by Mark: URL
// passwords, secret key/value and query parameters, Authorization
// credentials. Text with none of their markers is returned as it is,
// without a regular expression run: most log lines pay one scan.
func Text(s string) string {
	if !suspicious(s) {
		return s
	}
	s = userinfo.ReplaceAllString(s, "${1}"+Mark+"@")
	s = keyValue.ReplaceAllString(s, "${1}"+Mark)
	return auth.ReplaceAllString(s, "${1}${2}"+Mark)
}

// suspicious reports whether s may hold a secret of a shape Text knows:
// a URL with user info, a key=value, or an Authorization credential.
func suspicious(s string) bool {
	return strings.IndexByte(s, '=') >= 0 || (strings.IndexByte(s, '@') >= 0 && strings.Contains(s, "://")) ||
		strings.Contains(s, "earer ") || strings.Contains(s, "asic ") ||
		strings.Contains(s, "EARER ") || strings.Contains(s, "ASIC ")
}

// URL is a connection string (URL or key/value DSN) with its password
// replaced by Mark; the rest stays, so that an operator sees where the
// program connects and as whom.
func URL(s string) string { return Text(s) }

// ReplaceAttr is a slog.HandlerOptions.ReplaceAttr that runs Text over
// every string and error value, so that a secret inside an error (a URL a
// client library quotes, a DSN) never reaches a log. Values of other kinds
// are left alone: configuration structs redact themselves (LogValue).
func ReplaceAttr(_ []string, a slog.Attr) slog.Attr {
	switch a.Value.Kind() {
	case slog.KindString:
		if s := a.Value.String(); suspicious(s) {
			a.Value = slog.StringValue(Text(s))
		}
	case slog.KindAny:
		if err, ok := a.Value.Any().(error); ok && err != nil {
			if s := err.Error(); suspicious(s) {
				a.Value = slog.StringValue(Text(s))
			}
		}
	}
	return a
}

// Handler is slog's JSON handler writing to w at level with ReplaceAttr:
// the one way the programs build their logger.
func Handler(w io.Writer, level slog.Leveler) slog.Handler {
	return slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level, ReplaceAttr: ReplaceAttr})
}
