package redisstore

import (
	"context"
	"errors"
	"net"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
)

// Instrument adds a hook to c that records every command's (and
// pipeline's) latency and errors on reg: sesgate_redis_latency_seconds
// {op} (op: command name, "pipeline" or "dial") and sesgate_redis_errors_total
// {op, kind} (kind: timeout, network, other; redis.Nil is not an error).
func Instrument(c redis.UniversalClient, reg prometheus.Registerer) error {
	lat := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "sesgate_redis_latency_seconds", Help: "Latency of Redis commands and pipelines, by operation.",
		Buckets: []float64{.0005, .001, .002, .005, .01, .025, .05, .1, .25, .5, 1},
	}, []string{"op"})
	errs := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sesgate_redis_errors_total", Help: "Failed Redis commands, by operation and kind (timeout, network, other).",
	}, []string{"op", "kind"})
	for _, col := range []prometheus.Collector{lat, errs} {
		if err := reg.Register(col); err != nil {
			return err
		}
	}
	c.AddHook(metricsHook{lat: lat, errs: errs})
	return nil
}

type metricsHook struct {
	lat  *prometheus.HistogramVec
	errs *prometheus.CounterVec
}

// op bounds the label: the command names go-redis sends are a fixed set,
// but a script's EVALSHA and friends all count under their own name.
func opName(cmd redis.Cmder) string {
	n := cmd.Name()
	if len(n) > 20 {
		return "other"
	}
	return n
}

func (h metricsHook) observe(op string, start time.Time, err error) {
	h.lat.WithLabelValues(op).Observe(time.Since(start).Seconds())
	// The connection handshake's optional CLIENT subcommands (SETINFO,
	// MAINT_NOTIFICATIONS), refused by older servers, are ignored by
	// go-redis: not errors of ours. sesgate sends no other subcommand
	// a server could not know.
	if err == nil || errors.Is(err, redis.Nil) || strings.Contains(err.Error(), "unknown subcommand") {
		return
	}
	kind := "other"
	var ne net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		kind = "timeout"
	case errors.As(err, &ne):
		kind = "network"
	}
	h.errs.WithLabelValues(op, kind).Inc()
}

func (h metricsHook) DialHook(next redis.DialHook) redis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		start := time.Now()
		c, err := next(ctx, network, addr)
		h.observe("dial", start, err)
		return c, err
	}
}

func (h metricsHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		start := time.Now()
		err := next(ctx, cmd)
		h.observe(opName(cmd), start, err)
		return err
	}
}

func (h metricsHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		start := time.Now()
		err := next(ctx, cmds)
		h.observe("pipeline", start, err)
		return err
	}
}
