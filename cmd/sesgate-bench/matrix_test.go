package main

import (
	"bytes"
	"errors"
	"slices"
	"testing"

	"github.com/sesgate/sesgate/internal/bench/load"
)

// TestMatrixFlags: every flag of the load matrix (-c list, --store,
// --tenant, --known-fraction, --domains, --thin-relay) parsed, defaulted
// and refused with its exact message.
func TestMatrixFlags(t *testing.T) {
	ok := []struct {
		name  string
		args  []string
		check func(*load.Settings) bool
	}{
		{"defaults", nil, func(s *load.Settings) bool {
			return slices.Equal(s.Concurrencies, []int{16}) && s.Concurrency == 16 && s.Stores == nil && s.Tenant == "full" &&
				s.KnownFraction == 0.5 && s.Domains == 50 && s.ThinRelay
		}},
		{"a list", []string{"-c", "1, 8,32"}, func(s *load.Settings) bool {
			return slices.Equal(s.Concurrencies, []int{1, 8, 32}) && s.Concurrency == 1
		}},
		{"two stores", []string{"--store", "redis,embedded", "--redis-url", "redis://127.0.0.1:1"}, func(s *load.Settings) bool {
			return slices.Equal(s.Stores, []string{"redis", "embedded"})
		}},
		{"start-redis alone keeps working", []string{"--start-redis"}, func(s *load.Settings) bool { return s.StartRedis && s.Stores == nil }},
		{"mix", []string{"--known-fraction", "0", "--domains", "1"}, func(s *load.Settings) bool { return s.KnownFraction == 0 && s.Domains == 1 }},
		{"dev", []string{"--tenant", "dev"}, func(s *load.Settings) bool { return s.Tenant == "dev" }},
		{"no thin relay", []string{"--thin-relay=false", "--proto", "http"}, func(s *load.Settings) bool { return !s.ThinRelay }},
		{"target: the relay is off", []string{"--smtp", "127.0.0.1:1", "--token", "t"}, func(s *load.Settings) bool { return !s.ThinRelay }},
	}
	for _, tt := range ok {
		t.Run(tt.name, func(t *testing.T) {
			s, err := parseSettings("load", tt.args, &bytes.Buffer{})
			if err != nil || !tt.check(s) {
				t.Fatalf("settings %+v, err %v", s, err)
			}
		})
	}
	bad := []struct {
		args []string
		want string
	}{
		{[]string{"-c", "1,x"}, `-c "1,x": want a number or a list like 1,8,32`},
		{[]string{"-c", "1,0"}, "-c must be 1 to 512"},
		{[]string{"-c", "1,513"}, "-c must be 1 to 512"},
		{[]string{"-c", "8,1,8"}, "-c lists 8 twice"},
		{[]string{"-c", "1,2,3,4,5,6,7,8,9"}, "-c lists at most 8 concurrencies"},
		{[]string{"--store", "memory"}, `--store "memory": want redis, embedded or redis,embedded`},
		{[]string{"--store", "redis,redis"}, "--store lists redis twice"},
		{[]string{"--store", "embedded", "--start-redis"}, "--start-redis and --redis-url are for --store redis"},
		{[]string{"--tenant", "limited"}, `--tenant "limited": want full or dev`},
		{[]string{"--known-fraction", "1.5"}, "--known-fraction must be 0 to 1"},
		{[]string{"--domains", "0"}, "--domains must be 1 to 10000"},
		{[]string{"--tenant", "dev", "--domains", "5"}, "--known-fraction and --domains are for --tenant full"},
		{[]string{"--proto", "http", "--thin-relay"}, "--thin-relay is an SMTP phase: not with --proto http"},
		{[]string{"--smtp", "127.0.0.1:1", "--token", "t", "--store", "redis"}, "--store and --thin-relay are for a self-started gateway, not a target"},
		{[]string{"-c", "0", "--store", "x", "--domains", "0"}, `-c must be 1 to 512; --store "x": want redis, embedded or redis,embedded; --domains must be 1 to 10000`},
	}
	for _, tt := range bad {
		t.Run(tt.want, func(t *testing.T) {
			_, err := parseSettings("load", tt.args, &bytes.Buffer{})
			var ue usageError
			if err == nil || err.Error() != tt.want || !asUsage(err, &ue) {
				t.Fatalf("err = %v, want usage error %q", err, tt.want)
			}
		})
	}
	// refuse keeps one worker count and has none of the matrix flags.
	if _, err := parseSettings("refuse", []string{"--store", "redis"}, &bytes.Buffer{}); err == nil {
		t.Error("refuse accepted --store")
	}
	if s, err := parseSettings("refuse", []string{"-c", "3"}, &bytes.Buffer{}); err != nil || s.Concurrency != 3 || s.Tenant != "dev" {
		t.Errorf("refuse -c 3: %+v %v", s, err)
	}
}

// TestThinRelayFlags: the subcommand's flags and their exact refusals.
func TestThinRelayFlags(t *testing.T) {
	s, err := parseThinRelay([]string{"--ses-endpoint", "http://127.0.0.1:9", "--smtp-addr", "127.0.0.1:0"}, &bytes.Buffer{})
	if err != nil || s.endpoint != "http://127.0.0.1:9" || s.smtpAddr != "127.0.0.1:0" {
		t.Fatalf("%+v %v", s, err)
	}
	for _, tt := range []struct {
		args []string
		want string
	}{
		{nil, `--ses-endpoint "": want http(s)://host[:port]`},
		{[]string{"--ses-endpoint", "127.0.0.1:9", "x"}, `thin-relay takes no arguments; --ses-endpoint "127.0.0.1:9": want http(s)://host[:port]`},
		{[]string{"--nope"}, "flag provided but not defined: -nope"},
	} {
		if _, err := parseThinRelay(tt.args, &bytes.Buffer{}); err == nil || err.Error() != tt.want {
			t.Errorf("%v: err = %v, want %q", tt.args, err, tt.want)
		}
	}
}

func asUsage(err error, ue *usageError) bool { return errors.As(err, ue) }
