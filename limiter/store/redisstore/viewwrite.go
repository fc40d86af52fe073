package redisstore

import (
	"context"
	"fmt"

	"github.com/redis/go-redis/v9"

	"github.com/sesgate/sesgate/limiter/store"
)

// The writers of the suppression lists and of the global freeze flag
// publish on ViewChannel in the same script as the write: a write is never
// visible without its message having been sent (pub/sub still delivers at
// most once: a subscriber that was away rebuilds, see view.build).
var (
	supAddScript = redis.NewScript(`redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('PUBLISH', ARGV[3], ARGV[4])
return 1`)
	supRemoveScript = redis.NewScript(`local n = redis.call('HDEL', KEYS[1], ARGV[1])
if n > 0 then redis.call('PUBLISH', ARGV[2], ARGV[3]) end
return n`)
	// KEYS: the flag, its version. ARGV: flagSet or not, the channel, the
	// message before and after the version.
	freezeScript = redis.NewScript(`if ARGV[1] == '1' then redis.call('SET', KEYS[1], '1') else redis.call('DEL', KEYS[1]) end
local v = redis.call('INCR', KEYS[2])
redis.call('PUBLISH', ARGV[2], ARGV[3] .. v .. ARGV[4])
return v`)
)

func viewMsg(kind, a, b string) string { return kind + "\x00" + a + "\x00" + b }

// addSuppression writes and publishes one entry, then adds it to this
// replica's own view (read-your-writes even before the message is back).
func (s *Store) addSuppression(ctx context.Context, sp store.Suppression) error {
	err := supAddScript.Run(ctx, s.c, []string{supKey(sp.Tenant)}, sp.Address, sp.EncodeValue(),
		ViewChannel, viewMsg(msgSupAdd, sp.Tenant, sp.Address)).Err()
	if err != nil {
		return fmt.Errorf("redisstore: add suppression: %w", err)
	}
	if s.view != nil {
		s.view.add(sp.Tenant, sp.Address)
	}
	return nil
}

func (s *Store) removeSuppression(ctx context.Context, tenant, lower string) (bool, error) {
	n, err := supRemoveScript.Run(ctx, s.c, []string{supKey(tenant)}, lower,
		ViewChannel, viewMsg(msgSupRemove, tenant, lower)).Int64()
	if err != nil {
		return false, fmt.Errorf("redisstore: remove suppression: %w", err)
	}
	return n > 0, nil
}

// setGlobalFrozen writes and publishes the global flag with its next
// version, and applies it here at once.
func (s *Store) setGlobalFrozen(ctx context.Context, frozen bool) error {
	f := flagUnset
	if frozen {
		f = flagSet
	}
	v, err := freezeScript.Run(ctx, s.c, []string{keyGlobalFrozen, keyGlobalFrozenVer}, f,
		ViewChannel, msgFreeze+"\x00", "\x00"+f).Int64()
	if err != nil {
		return fmt.Errorf("redisstore: set global freeze: %w", err)
	}
	if s.view != nil {
		s.view.setFrozen(v, frozen)
	}
	return nil
}

// ViewStats describes the in-process view; the zero value when it is off.
func (s *Store) ViewStats() ViewStats {
	if s.view == nil {
		return ViewStats{}
	}
	return s.view.stats()
}
