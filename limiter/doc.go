// Package limiter decides whether a tenant may send a message now.
//
// Local is the in-process layer: one golang.org/x/time/rate token bucket per
// tenant, in messages per second with a burst. It implements gateway.Limiter.
// A refusal never consumes budget and carries the time until the next message
// would fit, which the front ends pass on as Retry-After.
//
// Shared limits that every replica enforces together live behind the same
// gateway.Limiter interface and are built on a shared store.
package limiter
