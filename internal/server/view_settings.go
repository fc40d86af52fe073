package server

import (
	"flag"
	"fmt"
	"time"

	"github.com/sesgate/sesgate/internal/cli"
	"github.com/sesgate/sesgate/limiter/store/redisstore"
)

// ViewSettings tune the Redis store's in-process view of the suppression
// lists and the global freeze flag (package redisstore, "The view").
type ViewSettings struct {
	// RedisFreezePoll: how often the global freeze flag is polled as a
	// backstop of its push (and the view's subscription pinged).
	RedisFreezePoll time.Duration
	// RedisViewRebuild: how often the suppression filter is rebuilt from a
	// full scan of the lists.
	RedisViewRebuild time.Duration
}

// Bounds of the view's settings.
const (
	minFreezePoll  = 100 * time.Millisecond
	maxFreezePoll  = time.Minute
	minViewRebuild = time.Minute
	maxViewRebuild = 24 * time.Hour
)

func viewFlags(fs *flag.FlagSet, s *ViewSettings) error {
	for _, d := range []struct {
		v          *time.Duration
		name, env  string
		def        time.Duration
		help       string
		minV, maxV time.Duration
	}{
		{&s.RedisFreezePoll, "redis-freeze-poll", "SESGATE_REDIS_FREEZE_POLL", redisstore.DefaultFreezePoll,
			"Redis store: how often the global freeze flag is read as a backstop of its pub/sub push", minFreezePoll, maxFreezePoll},
		{&s.RedisViewRebuild, "redis-view-rebuild", "SESGATE_REDIS_VIEW_REBUILD", redisstore.DefaultViewRebuild,
			"Redis store: how often the in-process suppression filter is rebuilt from a scan of the lists (removed addresses leave it then)", minViewRebuild, maxViewRebuild},
	} {
		v, err := time.ParseDuration(cli.Env(d.env, d.def.String()))
		if err != nil {
			return cli.UsageError{Msg: d.env + ": " + err.Error()}
		}
		fs.DurationVar(d.v, d.name, v, fmt.Sprintf("%s, %s to %s (env %s)", d.help, d.minV, d.maxV, d.env))
	}
	return nil
}

func (s ViewSettings) check() error {
	if s.RedisFreezePoll < minFreezePoll || s.RedisFreezePoll > maxFreezePoll {
		return cli.UsageError{Msg: fmt.Sprintf("--redis-freeze-poll must be %s to %s", minFreezePoll, maxFreezePoll)}
	}
	if s.RedisViewRebuild < minViewRebuild || s.RedisViewRebuild > maxViewRebuild {
		return cli.UsageError{Msg: fmt.Sprintf("--redis-view-rebuild must be %s to %s", minViewRebuild, maxViewRebuild)}
	}
	return nil
}

// viewOptions are the store's view options from the settings.
func (s ViewSettings) viewOptions() redisstore.ViewOptions {
	return redisstore.ViewOptions{FreezePoll: s.RedisFreezePoll, Rebuild: s.RedisViewRebuild}
}
