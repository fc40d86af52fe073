package memory

import (
	"bytes"
	"io"
	"net/mail"
	"os"
	"testing"
)

func TestParseStatus(t *testing.T) {
	st, err := parseStatus([]byte("Name:\tsesgate\nVmPeak:\t  900 kB\nVmHWM:\t   2048 kB\nVmRSS:\t   1024 kB\nThreads: 5\n"))
	if err != nil {
		t.Fatal(err)
	}
	if st.RSS != 1024<<10 || st.Peak != 2048<<10 {
		t.Fatalf("got %+v", st)
	}
	if _, err := parseStatus([]byte("VmRSS:\t1 kB\n")); err == nil {
		t.Fatal("VmHWM missing: no error")
	}
	if _, err := parseStatus([]byte("VmRSS:\t1 MB\nVmHWM:\t1 kB\n")); err == nil {
		t.Fatal("unit MB: no error")
	}
}

func TestReadStatusAndResetPeakOfSelf(t *testing.T) {
	pid := os.Getpid()
	if err := ResetPeak(pid); err != nil {
		t.Fatal(err)
	}
	st, err := ReadStatus(pid)
	if err != nil {
		t.Fatal(err)
	}
	if st.RSS <= 0 || st.Peak < st.RSS {
		t.Fatalf("got %+v", st)
	}
}

func TestMessageExactSize(t *testing.T) {
	for _, size := range []int64{MinSize, MinSize + 1, MinSize + 77, 100_000, 100_001} {
		m := Message(size)
		if int64(len(m)) != size {
			t.Fatalf("size %d: got %d bytes", size, len(m))
		}
		msg, err := mail.ReadMessage(bytes.NewReader(m))
		if err != nil {
			t.Fatalf("size %d: %v", size, err)
		}
		if msg.Header.Get("From") == "" {
			t.Fatalf("size %d: no From", size)
		}
		body, _ := io.ReadAll(msg.Body)
		for line := range bytes.SplitSeq(body, []byte("\r\n")) {
			if bytes.ContainsAny(line, "\r\n.") || len(line) > 76 {
				t.Fatalf("size %d: bad line %q", size, line)
			}
		}
	}
}

func TestParseChecks(t *testing.T) {
	for _, args := range [][]string{
		{"--sessions", "0"}, {"--sessions", "1001"}, {"--size", "10"}, {"--size", "41943041"}, {"--phases", "smtp,nope"}, {"extra"},
	} {
		if _, err := Parse(args, io.Discard); err == nil {
			t.Errorf("%v: no error", args)
		}
	}
	s, err := Parse(nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if s.Sessions != 1000 || s.Size != DefaultSize || !s.has("json") {
		t.Fatalf("defaults: %+v", s)
	}
}
