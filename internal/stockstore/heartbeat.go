package stockstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// heartbeatKind names the key a running projector refreshes (outside any
// generation: it speaks of the process, not of the data). Its TTL makes it
// vanish when no projector of the topic is alive, so readers can tell a
// dead projector from a quiet source, which watermarks alone cannot.
const heartbeatKind = "heartbeat:"

func (s *Store) heartbeatKey(topic string) string {
	return s.base + heartbeatKind + "{" + topic + "}"
}

// Heartbeat records that a projector of topic is alive, for ttl.
func (s *Store) Heartbeat(ctx context.Context, topic string, ttl time.Duration) error {
	now := time.Now().UTC().Format(time.RFC3339Nano)
	if err := s.rdb.Set(ctx, s.heartbeatKey(topic), now, ttl).Err(); err != nil {
		return fmt.Errorf("writing heartbeat of %s: %w", topic, err)
	}
	return nil
}

// LastHeartbeat returns when a projector of topic last said it was alive;
// ok is false when none did within its TTL.
func (s *Store) LastHeartbeat(ctx context.Context, topic string) (at time.Time, ok bool, err error) {
	v, err := s.rdb.Get(ctx, s.heartbeatKey(topic)).Result()
	if errors.Is(err, redis.Nil) {
		return time.Time{}, false, nil
	}
	if err != nil {
		return time.Time{}, false, fmt.Errorf("reading heartbeat of %s: %w", topic, err)
	}
	at, err = time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return time.Time{}, false, fmt.Errorf("reading heartbeat of %s: %w", topic, err)
	}
	return at, true, nil
}
