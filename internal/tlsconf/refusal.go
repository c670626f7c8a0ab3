package tlsconf

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
)

// Refusal says which TLS setting a failed connection points at, or "" when
// err is not a TLS refusal. peer names the other side in the message
// ("broker", "server"); flags is the prefix of the connection's flags
// ("--kafka-", "--redis-") and addrFlag the flag that names where it dials.
// The clients share it so that a wrong CA or name reads the same whatever
// the service.
func Refusal(err error, peer, flags, addrFlag string) string {
	var (
		host    x509.HostnameError
		unknown x509.UnknownAuthorityError
		invalid x509.CertificateInvalidError
		header  tls.RecordHeaderError
		alert   tls.AlertError
	)
	switch {
	case errors.As(err, &host):
		return fmt.Sprintf("the %s's certificate is not for the name dialled (%s, %stls-server-name)", peer, addrFlag, flags)
	case errors.As(err, &unknown), errors.As(err, &invalid):
		return fmt.Sprintf("the %s's certificate is not signed by a CA this client trusts, or not valid now (%stls-ca-file)", peer, flags)
	case errors.As(err, &header):
		return fmt.Sprintf("the %s does not speak TLS on this port (drop %stls, or use its TLS listener)", peer, flags)
	case errors.As(err, &alert):
		return fmt.Sprintf("the %s ended the TLS handshake (its TLS version, or a client certificate it requires: %stls-min-version, %stls-cert-file)", peer, flags, flags)
	}
	return ""
}
