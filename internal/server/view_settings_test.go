package server

import (
	"io"
	"testing"
	"time"

	"github.com/sesgate/sesgate/limiter/store/redisstore"
)

func TestViewSettings(t *testing.T) {
	s, err := ParseSettings(nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if vo := s.viewOptions(); vo.FreezePoll != redisstore.DefaultFreezePoll || vo.Rebuild != redisstore.DefaultViewRebuild || vo.Off {
		t.Fatalf("defaults: %+v", vo)
	}
	t.Setenv("SESGATE_REDIS_VIEW_REBUILD", "10m")
	s, err = ParseSettings([]string{"--redis-freeze-poll", "250ms"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if vo := s.viewOptions(); vo.FreezePoll != 250*time.Millisecond || vo.Rebuild != 10*time.Minute {
		t.Fatalf("set: %+v", vo)
	}
	for _, tc := range []struct {
		args []string
		env  string
		want string
	}{
		{[]string{"--redis-freeze-poll", "10ms"}, "", "--redis-freeze-poll must be 100ms to 1m0s"},
		{[]string{"--redis-freeze-poll", "2m"}, "", "--redis-freeze-poll must be 100ms to 1m0s"},
		{[]string{"--redis-view-rebuild", "30s"}, "", "--redis-view-rebuild must be 1m0s to 24h0m0s"},
		{nil, "soon", "SESGATE_REDIS_VIEW_REBUILD: time: invalid duration \"soon\""},
	} {
		t.Setenv("SESGATE_REDIS_VIEW_REBUILD", "1h")
		if tc.env != "" {
			t.Setenv("SESGATE_REDIS_VIEW_REBUILD", tc.env)
		}
		if _, err := ParseSettings(tc.args, io.Discard); err == nil || err.Error() != tc.want {
			t.Errorf("%v %q: %v; want %q", tc.args, tc.env, err, tc.want)
		}
	}
}
