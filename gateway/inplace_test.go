package gateway

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"unsafe"
)

// FuzzPrepareMessageInPlace: preparing in place gives what PrepareMessage
// gives (the same message or the same refusal), on the seed corpus of
// FuzzPrepareMessage's real traffic and whatever the fuzzer finds.
func FuzzPrepareMessageInPlace(f *testing.F) {
	f.Add([]byte("From: a@example.com\r\nBcc: b@example.com\r\n\r\nbody\r\n"), false)
	f.Add([]byte("From: a@example.com\r\nX-SES-Configuration-Set: cs\r\nReturn-Path: <x@y>\r\n\r\n"), false)
	f.Add([]byte("From: a@example.com\r\n"), false)
	f.Add([]byte("From: a@example.com\r\n\tfolded\r\nSubject: s\r\n\r\nbody\r\nmore"), true)
	addCorpus(f, "FuzzPrepareMessage")
	f.Fuzz(func(t *testing.T, raw []byte, eightBit bool) {
		want, werr := PrepareMessage(raw, eightBit)
		owned := bytes.Clone(raw)
		got, gerr := PrepareMessageInPlace(owned, eightBit)
		if (werr == nil) != (gerr == nil) {
			t.Fatalf("PrepareMessage: %v; in place: %v", werr, gerr)
		}
		if werr != nil {
			if AsError(werr).Code != AsError(gerr).Code || werr.Error() != gerr.Error() {
				t.Fatalf("refusals differ: %v; in place: %v", werr, gerr)
			}
			return
		}
		if !reflect.DeepEqual(want, got) {
			t.Fatalf("in place differs:\n%q\n%q", want.Data, got.Data)
		}
	})
}

// addCorpus seeds f with the files of another fuzz target's corpus.
func addCorpus(f *testing.F, target string) {
	f.Helper()
	seeds, err := readCorpus("testdata/fuzz/" + target)
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range seeds {
		f.Add(s.raw, s.eightBit)
	}
}

func TestPrepareMessageInPlaceSharesTheMessage(t *testing.T) {
	body := strings.Repeat(strings.Repeat("x", 76)+"\r\n", 1<<14) // 1.3 MB
	raw := []byte("From: App <app@example.com>\r\nBcc: hidden@example.net\r\nX-SES-Configuration-Set: cs-1\r\nSubject: hi\r\n\r\n" + body)
	size := len(raw)
	owned := bytes.Clone(raw)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	m, err := PrepareMessageInPlace(owned, false)
	runtime.ReadMemStats(&after)
	if err != nil {
		t.Fatal(err)
	}
	if unsafe.SliceData(m.Data) != unsafe.SliceData(owned) {
		t.Fatal("the prepared message does not share the owned buffer")
	}
	want := "From: App <app@example.com>\r\nSubject: hi\r\n\r\n" + body
	if string(m.Data) != want || m.SES.ConfigurationSet != "cs-1" {
		t.Fatalf("prepared %d bytes (of %d), configuration set %q", len(m.Data), size, m.SES.ConfigurationSet)
	}
	// The header fields' small copies and the result: no copy of the body
	// (PrepareMessage allocates the message's size again).
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > uint64(size/20) {
		t.Fatalf("preparing %d bytes in place allocated %d bytes", size, alloc)
	}

	// Bare LF endings grow the message: a copy, the input left alone.
	lf := []byte("From: app@example.com\nSubject: hi\n\nbody\n")
	orig := bytes.Clone(lf)
	m, err = PrepareMessageInPlace(lf, false)
	if err != nil {
		t.Fatal(err)
	}
	if string(m.Data) != "From: app@example.com\r\nSubject: hi\r\n\r\nbody\r\n" || !bytes.Equal(lf, orig) {
		t.Fatalf("LF message: %q, input now %q", m.Data, lf)
	}
}

type corpusEntry struct {
	raw      []byte
	eightBit bool
}

// readCorpus reads the files of a fuzz corpus of ([]byte, bool) entries
// ("go test fuzz v1" format).
func readCorpus(dir string) ([]corpusEntry, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*"))
	if err != nil {
		return nil, err
	}
	var out []corpusEntry
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			return nil, err
		}
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		if len(lines) != 3 || lines[0] != "go test fuzz v1" {
			return nil, &os.PathError{Op: "parse corpus", Path: name, Err: os.ErrInvalid}
		}
		q, ok1 := strings.CutPrefix(lines[1], "[]byte(")
		q, ok2 := strings.CutSuffix(q, ")")
		raw, err := strconv.Unquote(q)
		if !ok1 || !ok2 || err != nil {
			return nil, &os.PathError{Op: "parse corpus", Path: name, Err: os.ErrInvalid}
		}
		out = append(out, corpusEntry{raw: []byte(raw), eightBit: lines[2] == "bool(true)"})
	}
	if len(out) == 0 {
		return nil, &os.PathError{Op: "read corpus", Path: dir, Err: os.ErrNotExist}
	}
	return out, nil
}
