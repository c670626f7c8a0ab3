package apibench

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"
)

// httpConn is a minimal HTTP/1.1 keep-alive client: it writes prebuilt
// requests and reads the answer's status, headers and body (Content-Length
// or chunked), discarding the body. net/http's client costs several times
// more CPU per request (a reader and a writer goroutine per connection,
// header maps, body wrappers); on a 2-CPU machine shared by client, API and
// Redis that CPU comes out of the API's share and would make the API look
// slower than it is next to the raw Redis reads, whose client (go-redis) is
// lean. This client is about as cheap per request as go-redis.
type httpConn struct {
	conn net.Conn
	r    *bufio.Reader
}

func dialHTTP(addr string) (*httpConn, error) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, fmt.Errorf("dialing the API: %w", err)
	}
	return &httpConn{conn: c, r: bufio.NewReaderSize(c, 64<<10)}, nil
}

func (h *httpConn) Close() error { return h.conn.Close() }

// do sends req (a whole HTTP/1.1 request) and reads the answer; an answer
// other than 200 is an error. It returns the body length.
func (h *httpConn) do(req []byte) (int, error) {
	_ = h.conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := h.conn.Write(req); err != nil {
		return 0, fmt.Errorf("writing request: %w", err)
	}
	line, err := h.r.ReadSlice('\n')
	if err != nil {
		return 0, fmt.Errorf("reading status line: %w", err)
	}
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.1 ")) {
		return 0, fmt.Errorf("bad status line %q", line)
	}
	status, err := strconv.Atoi(string(line[9:12]))
	if err != nil {
		return 0, fmt.Errorf("bad status line %q", line)
	}
	length, chunked := -1, false
	for {
		line, err := h.r.ReadSlice('\n')
		if err != nil {
			return 0, fmt.Errorf("reading headers: %w", err)
		}
		line = bytes.TrimRight(line, "\r\n")
		if len(line) == 0 {
			break
		}
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			return 0, fmt.Errorf("bad header line %q", line)
		}
		value = bytes.TrimSpace(value)
		switch {
		case bytes.EqualFold(name, []byte("Content-Length")):
			if length, err = strconv.Atoi(string(value)); err != nil {
				return 0, fmt.Errorf("bad Content-Length %q", value)
			}
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			chunked = bytes.EqualFold(value, []byte("chunked"))
		}
	}
	var n int
	switch {
	case chunked:
		n, err = h.discardChunked()
	case length >= 0:
		n, err = h.r.Discard(length)
	default:
		return 0, errors.New("answer without length: the client keeps connections alive")
	}
	if err != nil {
		return n, fmt.Errorf("reading body: %w", err)
	}
	if status != 200 {
		return n, fmt.Errorf("status %d", status)
	}
	return n, nil
}

func (h *httpConn) discardChunked() (int, error) {
	total := 0
	for {
		line, err := h.r.ReadSlice('\n')
		if err != nil {
			return total, err
		}
		size, err := strconv.ParseInt(string(bytes.TrimSpace(bytes.SplitN(line, []byte(";"), 2)[0])), 16, 64)
		if err != nil {
			return total, fmt.Errorf("bad chunk size %q", line)
		}
		if size == 0 {
			// Trailers (none expected) end with an empty line.
			for {
				line, err := h.r.ReadSlice('\n')
				if err != nil {
					return total, err
				}
				if len(bytes.TrimRight(line, "\r\n")) == 0 {
					return total, nil
				}
			}
		}
		n, err := h.r.Discard(int(size) + 2) // the chunk and its CRLF
		total += max(n-2, 0)
		if err != nil {
			return total, err
		}
	}
}

// getRequest and postRequest build whole requests once, outside the
// measured loop.
func getRequest(host, path string) []byte {
	return []byte("GET " + path + " HTTP/1.1\r\nHost: " + host + "\r\nUser-Agent: bench\r\n\r\n")
}

func postRequest(host, path, body string) []byte {
	return []byte("POST " + path + " HTTP/1.1\r\nHost: " + host + "\r\nUser-Agent: bench\r\n" +
		"Content-Type: application/json\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body)
}
