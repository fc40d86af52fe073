// Package outbox is the laptop sink: every accepted message is written to a
// directory instead of being sent. Nothing here pretends to deliver mail.
//
// For a message with gateway id ID it writes ID.eml (the exact bytes handed to
// the sink) and ID.json (tenant, envelope, time). Both are written to a
// temporary name, synced and renamed, .eml first, so a listed message (one
// with a .json) is always complete.
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

// Outbox writes messages under Dir.
type Outbox struct {
	dir string
	now func() time.Time
}

var _ gateway.Sink = (*Outbox)(nil)

// New returns an Outbox in dir, creating it (mode 0700) if needed.
func New(dir string, now func() time.Time) (*Outbox, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	if now == nil {
		now = time.Now
	}
	return &Outbox{dir: dir, now: now}, nil
}

// Dir returns the outbox directory.
func (o *Outbox) Dir() string { return o.dir }

// Send stores env and returns "outbox-<id>" as the provider id.
func (o *Outbox) Send(_ context.Context, env *gateway.Envelope) (string, error) {
	meta := Meta{ID: env.ID, Tenant: env.Tenant.ID, From: env.From, Recipients: env.Recipients, Size: len(env.Data), Time: o.now().UTC()}
	js, err := json.MarshalIndent(meta, "", "  ")
	if err != nil {
		return "", gateway.Wrap(gateway.CodeInternal, err, "outbox write failed")
	}
	if err := o.write(env.ID+".eml", env.Data); err != nil {
		return "", gateway.Wrap(gateway.CodeInternal, err, "outbox write failed")
	}
	if err := o.write(env.ID+".json", append(js, '\n')); err != nil {
		return "", gateway.Wrap(gateway.CodeInternal, err, "outbox write failed")
	}
	return "outbox-" + env.ID, nil
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
