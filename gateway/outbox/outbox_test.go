package outbox

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/sesgate/sesgate/gateway"
)

func TestSendListShow(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "outbox")
	now := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	o, err := New(dir, func() time.Time { return now })
	if err != nil {
		t.Fatal(err)
	}
	ten := &gateway.Tenant{ID: "dev"}
	data := []byte("From: a@example.com\r\n\r\nhello\r\n")
	for i, id := range []string{"01aaa", "01bbb"} {
		pid, err := o.Send(context.Background(), &gateway.Envelope{ID: id, Tenant: ten, From: "a@example.com", Recipients: []string{"b@example.org"}, Data: data})
		if err != nil || pid != "outbox-"+id {
			t.Fatalf("send %d: %q, %v", i, pid, err)
		}
	}
	list, err := o.List()
	if err != nil || len(list) != 2 || list[0].ID != "01aaa" || list[1].Recipients[0] != "b@example.org" || !list[0].Time.Equal(now) {
		t.Fatalf("list = %+v, %v", list, err)
	}
	m, got, err := o.Show("01bbb")
	if err != nil || !bytes.Equal(got, data) || m.Tenant != "dev" || m.Size != len(data) {
		t.Fatalf("show: %+v %q %v", m, got, err)
	}
	st, err := os.Stat(filepath.Join(dir, "01bbb.eml"))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("eml mode %v, %v", st.Mode(), err)
	}
	for _, bad := range []string{"nope", "../01aaa", "", "01aaa.json"} {
		if _, _, err := o.Show(bad); !errors.Is(err, ErrNotFound) {
			t.Errorf("Show(%q) = %v; want ErrNotFound", bad, err)
		}
	}
	if tmp, _ := filepath.Glob(filepath.Join(dir, ".tmp-*")); len(tmp) != 0 {
		t.Fatalf("temp files left: %v", tmp)
	}
}

func TestSendFailsOnUnwritableDir(t *testing.T) {
	dir := t.TempDir()
	o, err := New(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	_, err = o.Send(context.Background(), &gateway.Envelope{ID: "x", Tenant: &gateway.Tenant{ID: "t"}, Data: []byte("x")})
	if ge := gateway.AsError(err); ge == nil || ge.Code != gateway.CodeInternal || !ge.Code.Temporary() {
		t.Fatalf("err = %v; want temporary internal error", err)
	}
}
