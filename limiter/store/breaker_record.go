package store

import "time"

// BreakerRecord is a tenant's whole breaker record: the part admission
// reads (Breaker), the warning flag (admission halves the tenant's GCRA
// rate while it is set) and Data, the feedback side's own state (opaque to
// the store: the breaker snapshot, trip history and sent-counter
// bookkeeping). Stores that support the feedback wiring implement
// UpdateBreakerRecord with one atomic read-modify-write per call.
type BreakerRecord struct {
	Breaker
	Warning bool
	Data    []byte
}

// MaxBreakerData bounds BreakerRecord.Data.
const MaxBreakerData = 256 << 10

// MessageRef ties an SES MessageId to the tenant and gateway id that sent
// it (the attribution fallback for events without tags).
type MessageRef struct {
	SESMessageID string
	Tenant       string
	GatewayID    string
	At           time.Time // when SES accepted it (the status record's "accepted")
	// Recipients the message was sent to: the dashboard's recipient index
	// (DashboardStore.RecordAccepted); not part of the MessageId record.
	Recipients []string
}

// DefaultMessageTTL is how long a MessageRef is remembered.
const DefaultMessageTTL = 7 * 24 * time.Hour
