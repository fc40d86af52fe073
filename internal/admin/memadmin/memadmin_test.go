package memadmin

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/sesgate/sesgate/internal/admin"
)

func TestAuditBounded(t *testing.T) {
	b := New(Options{})
	ctx := context.Background()
	for i := 0; i < MaxAudit+5; i++ {
		if err := b.Audit().Record(ctx, admin.AuditEntry{Target: fmt.Sprint(i)}); err != nil {
			t.Fatal(err)
		}
	}
	all, _ := b.Audit().List(ctx, MaxAudit+100)
	if len(all) != MaxAudit || all[0].Target != fmt.Sprint(MaxAudit+4) || all[len(all)-1].Target != "5" {
		t.Fatalf("%d entries, newest %q, oldest %q", len(all), all[0].Target, all[len(all)-1].Target)
	}
}

func TestSuppressionsAddIsAllOrNothing(t *testing.T) {
	b := New(Options{Tenants: []Tenant{{ID: "a"}}})
	ctx := context.Background()
	now := time.Unix(1_800_000_000, 0).UTC()
	tests := []struct {
		name  string
		add   []admin.Suppression
		err   error
		count int
	}{
		{"unknown tenant in the batch", []admin.Suppression{{Address: "x@example.com", Added: now}, {Tenant: "zz", Address: "y@example.com"}}, admin.ErrNotFound, 0},
		{"valid batch", []admin.Suppression{{Address: "x@example.com"}, {Tenant: "a", Address: "x@example.com"}}, nil, 2},
		{"replace", []admin.Suppression{{Address: "x@example.com", Reason: admin.ReasonComplaint}}, nil, 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := b.Suppressions().Add(ctx, tc.add); !errors.Is(err, tc.err) {
				t.Fatalf("err %v, want %v", err, tc.err)
			}
			l, next, err := b.Suppressions().List(ctx, admin.SuppressionQuery{Tenant: admin.AllLists, Limit: 10})
			if err != nil || next != "" || len(l) != tc.count {
				t.Fatalf("list: %d entries, next %q, %v", len(l), next, err)
			}
		})
	}
	if _, _, err := b.Suppressions().List(ctx, admin.SuppressionQuery{Cursor: "!!"}); !errors.Is(err, admin.ErrInvalid) {
		t.Fatalf("bad cursor: %v", err)
	}
}
