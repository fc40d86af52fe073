// Package outbox is the laptop sink: every accepted message is written to a
// directory instead of being sent. Nothing here pretends to deliver mail.
//
// For a message with gateway id ID it writes ID.eml (the exact bytes handed to
// the sink) and ID.json (tenant, envelope, time). Both are written to a
// temporary name (.tmp-*), synced and renamed, .eml first, and the directory
// is synced after the .json; Send answers only then. So a listed message (one
// with a .json) is always complete, and a crash (kill -9, power loss) can
// leave only files of a message that was never acknowledged: a .tmp-* file,
// or an ID.eml without its ID.json (an orphan).
//
// New removes such leftovers. Every open Outbox holds a shared flock(2) on
// DIR/.lock for its life (Close releases it; so does the process's death).
// New first tries to take that lock exclusively: when it gets it no other
// process has the directory open, nothing can be in flight, and every
// leftover is removed. When another Outbox holds it (a running server while
// `sesgate outbox list` runs, or two servers sharing one data directory)
// only leftovers older than StaleAfter are removed, since younger ones may
// be writes in flight. Where flock is not available, New always behaves as
// in the second case. Removal is best effort: a leftover that cannot be
// removed does not fail New (List never shows it).
package outbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/sesgate/sesgate/gateway"
)

// Meta is the .json record of one message.
type Meta struct {
	ID         string    `json:"id"`
	Tenant     string    `json:"tenant"`
	From       string    `json:"from"`
	Recipients []string  `json:"recipients"`
	Size       int       `json:"size"`
	Time       time.Time `json:"time"`
}

// StaleAfter is the age past which New removes a leftover even while
// another Outbox has the directory open: far longer than writing and syncing
// one message of SES's maximum size takes.
const StaleAfter = 10 * time.Minute

// Bounds of New's wait for the shared lock, held exclusively only while
// another New removes leftovers.
const (
	lockWait = 10 * time.Second
	lockPoll = 10 * time.Millisecond
)

// lockName is the lock file in the outbox directory.
const lockName = ".lock"

// Outbox writes messages under Dir.
type Outbox struct {
	dir  string
	now  func() time.Time
	lock *os.File // nil when the lock file could not be opened
}

var _ gateway.Sink = (*Outbox)(nil)

// New returns an Outbox in dir, creating it (mode 0700) if needed, and
// removes the leftovers of a crashed writer (see the package doc). Close
// releases the directory.
func New(dir string, now func() time.Time) (*Outbox, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	if now == nil {
		now = time.Now
	}
	o := &Outbox{dir: dir, now: now}
	alone := false
	// Without a lock file (a directory this user may only read) nothing
	// can be written either; New still opens it for List and Show.
	if f, err := os.OpenFile(filepath.Join(dir, lockName), os.O_RDWR|os.O_CREATE, 0o600); err == nil {
		o.lock = f
		if alone, err = tryLockExclusive(f); err != nil {
			f.Close()
			return nil, fmt.Errorf("outbox lock: %w", err)
		}
	}
	o.removeLeftovers(alone)
	if o.lock != nil {
		if err := lockShared(o.lock, lockWait, lockPoll); err != nil {
			o.lock.Close()
			return nil, fmt.Errorf("outbox lock: %w", err)
		}
	}
	return o, nil
}

// Close releases the directory lock. The Outbox must not be used after.
func (o *Outbox) Close() error {
	if o.lock == nil {
		return nil
	}
	err := o.lock.Close() // closing the descriptor releases the flock
	o.lock = nil
	return err
}

// removeLeftovers removes .tmp-* files and .eml files without their .json:
// all of them when alone, else those older than StaleAfter.
func (o *Outbox) removeLeftovers(alone bool) {
	ents, err := os.ReadDir(o.dir)
	if err != nil {
		return
	}
	names := make(map[string]struct{}, len(ents))
	for _, e := range ents {
		names[e.Name()] = struct{}{}
	}
	cutoff := o.now().Add(-StaleAfter)
	for _, e := range ents {
		n := e.Name()
		leftover := strings.HasPrefix(n, ".tmp-")
		if id, ok := strings.CutSuffix(n, ".eml"); ok {
			_, complete := names[id+".json"]
			leftover = !complete
		}
		if !leftover || !e.Type().IsRegular() {
			continue
		}
		if !alone {
			info, err := e.Info()
			if err != nil || info.ModTime().After(cutoff) {
				continue
			}
		}
		_ = os.Remove(filepath.Join(o.dir, n)) // best effort; List never shows it
	}
}

// Dir returns the outbox directory.
func (o *Outbox) Dir() string { return o.dir }

// Send stores env and returns "outbox-<id>" as the provider id.
func (o *Outbox) Send(_ context.Context, env *gateway.Envelope) (string, error) {
	if env.Template != nil {
		return "", gateway.Errorf(gateway.CodeBadParameter, "template content is rendered by SES: the outbox cannot keep it (use --sink ses)")
	}
	meta := Meta{ID: env.ID, Tenant: env.Tenant.ID, From: env.From, Recipients: env.Recipients, Size: len(env.Data), Time: o.now().UTC()}
	js, err := json.MarshalIndent(meta, "", "  ")
	if err != nil {
		return "", gateway.Wrap(gateway.CodeInternal, err, "outbox write failed")
	}
	if err := o.write(env.ID+".eml", env.Data); err != nil {
		return "", gateway.Wrap(gateway.CodeInternal, err, "outbox write failed")
	}
	if err := o.write(env.ID+".json", append(js, '\n')); err != nil {
		os.Remove(filepath.Join(o.dir, env.ID+".eml")) // no orphan
		return "", gateway.Wrap(gateway.CodeInternal, err, "outbox write failed")
	}
	// The renames are durable only once the directory is synced.
	if err := syncDir(o.dir); err != nil {
		return "", gateway.Wrap(gateway.CodeInternal, err, "outbox write failed")
	}
	return "outbox-" + env.ID, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

func (o *Outbox) write(name string, data []byte) error {
	f, err := os.CreateTemp(o.dir, ".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp, 0o600)
	}
	if err == nil {
		return os.Rename(tmp, filepath.Join(o.dir, name))
	}
	os.Remove(tmp)
	return err
}

// List returns the stored messages, oldest first (ids sort by time).
func (o *Outbox) List() ([]Meta, error) {
	names, err := filepath.Glob(filepath.Join(o.dir, "*.json"))
	if err != nil {
		return nil, err
	}
	slices.Sort(names)
	out := make([]Meta, 0, len(names))
	for _, n := range names {
		m, err := o.meta(strings.TrimSuffix(filepath.Base(n), ".json"))
		if err != nil {
			return nil, err
		}
		out = append(out, *m)
	}
	return out, nil
}

// ErrNotFound is returned by Show for an unknown id.
var ErrNotFound = errors.New("no such message in the outbox")

// Show returns the metadata and raw bytes of one message.
func (o *Outbox) Show(id string) (*Meta, []byte, error) {
	if !validID(id) {
		return nil, nil, ErrNotFound
	}
	m, err := o.meta(id)
	if err != nil {
		return nil, nil, err
	}
	data, err := os.ReadFile(filepath.Join(o.dir, id+".eml"))
	if err != nil {
		return nil, nil, fmt.Errorf("read message: %w", err)
	}
	return m, data, nil
}

func (o *Outbox) meta(id string) (*Meta, error) {
	b, err := os.ReadFile(filepath.Join(o.dir, id+".json"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	var m Meta
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("%s.json: %w", id, err)
	}
	return &m, nil
}

// validID keeps ids to the gateway's alphabet so Show cannot leave the directory.
func validID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for _, c := range id {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}
