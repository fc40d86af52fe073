package redisstore

import (
	"context"
	_ "embed"
	"fmt"
	"strconv"
	"strings"

	"github.com/sesgate/sesgate/gateway"
	"github.com/sesgate/sesgate/limiter/store"
)

// The first-contact window's keys, after tenantPrefix (same slot as the
// admission script's): a hash of the window's figures, a sorted set of the
// outstanding first contacts (HMAC -> expiry, unix ms), and one marker per
// (recipient HMAC) that a complaint's shrink was applied
// (store.SettleMemory).
const (
	keyWindow      = "fcw"
	keyOutstanding = "fco"
	keyShrunk      = "fcs:"

	fieldWinWindow     = "w"   // the window, a float
	fieldWinThresh     = "th"  // the slow-start threshold
	fieldWinHeld       = "h"   // messages refused by the window
	fieldWinDeliveries = "dl"  // Delivery recipients seen
	fieldWinExpired    = "exp" // outstanding entries expired
	fieldWinEpochD     = "ed"  // the epoch's settled Deliveries
	fieldWinEpochB     = "eb"  // the epoch's settled hard bounces
)

// windowArgc is the number of ARGV slots window.lua names before the
// recipients' HMACs.
const windowArgc = 9

//go:embed window.lua
var windowSrc string

// windowScript is window.lua preceded by its constants.
func windowScript() string { return withConsts("windowConsts", windowConsts(), windowSrc) }

// windowConsts are the constants window.lua uses.
func windowConsts() []admitConst {
	return []admitConst{
		clockConsts[0], clockConsts[1], {"ARGC", int64(windowArgc)},
		{"DELIVERY", string(store.SettleDelivery)}, {"BOUNCE", string(store.SettleBounce)},
		{"COMPLAINT", string(store.SettleComplaint)},
		{"SETTLE_MEMORY", store.SettleMemory.Milliseconds()}, {"K_WSHRUNK", keyShrunk},
		{"F_W_WINDOW", fieldWinWindow}, {"F_W_THRESH", fieldWinThresh}, {"F_W_HELD", fieldWinHeld},
		{"F_W_DELIVERIES", fieldWinDeliveries}, {"F_W_EXPIRED", fieldWinExpired},
		{"F_W_EPOCH_D", fieldWinEpochD}, {"F_W_EPOCH_B", fieldWinEpochB},
	}
}

var _ store.WindowStore = (*Store)(nil)

// SettleFirstContacts implements store.WindowStore: one script call on the
// tenant's slot.
func (s *Store) SettleFirstContacts(ctx context.Context, req store.SettleRequest) (store.SettleResult, error) {
	if err := req.Validate(); err != nil {
		return store.SettleResult{}, err
	}
	return s.runWindow(ctx, req.Tenant, req.Outcome, req.Recipients, req.Window)
}

// FirstContactWindow implements store.WindowStore (the same script,
// settling nothing).
func (s *Store) FirstContactWindow(ctx context.Context, tenant string, w gateway.FirstContactWindow) (store.WindowStatus, error) {
	if !w.On() {
		w = gateway.FirstContactWindow{Initial: 1, Min: 1, Max: 1}
	}
	req := store.SettleRequest{Tenant: tenant, Outcome: store.SettleNeutral, Window: w}
	if err := req.Validate(); err != nil {
		return store.WindowStatus{}, err
	}
	r, err := s.runWindow(ctx, tenant, store.SettleNeutral, nil, w)
	return r.Status, err
}

func (s *Store) runWindow(ctx context.Context, tenant string, outcome store.Settle, rcpts []string, w gateway.FirstContactWindow) (store.SettleResult, error) {
	p := tenantPrefix(tenant)
	argv := make([]any, 0, windowArgc+len(rcpts))
	argv = append(argv, s.nowArg(), string(outcome), w.Initial, w.Min, w.Max, w.Threshold, p,
		w.SampleSize(), strconv.FormatFloat(w.BounceRate(), 'g', 17, 64))
	for _, a := range rcpts {
		argv = append(argv, s.keyer.Hash(strings.ToLower(a)))
	}
	res, err := s.window.Run(ctx, s.c, []string{p + keyWindow, p + keyOutstanding}, argv...).Slice()
	if err != nil {
		return store.SettleResult{}, fmt.Errorf("redisstore: window: %w", err)
	}
	return parseWindow(res)
}

func parseWindow(res []any) (store.SettleResult, error) {
	bad := fmt.Errorf("redisstore: window script returned a bad answer")
	if len(res) != 10 {
		return store.SettleResult{}, bad
	}
	ws, ok := res[1].(string)
	cwnd, err := strconv.ParseFloat(ws, 64)
	if !ok || err != nil {
		return store.SettleResult{}, bad
	}
	var n [9]int64
	for i, j := range []int{0, 2, 3, 4, 5, 6, 7, 8, 9} {
		v, ok := res[j].(int64)
		if !ok {
			return store.SettleResult{}, bad
		}
		n[i] = v
	}
	return store.SettleResult{Settled: int(n[0]), Shrunk: n[8] == 1, Status: store.WindowStatus{
		Window: cwnd, Threshold: n[1], Outstanding: n[2], Held: n[3], Deliveries: n[4], Expired: n[5],
		EpochDelivered: n[6], EpochBounced: n[7],
	}}, nil
}
