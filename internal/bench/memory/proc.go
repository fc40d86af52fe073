package memory

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// Status is the memory of a process from /proc/<pid>/status, in bytes.
type Status struct {
	RSS  int64 // VmRSS: resident now
	Peak int64 // VmHWM: the most resident since start or the last ResetPeak
}

// ReadStatus reads VmRSS and VmHWM of pid (Linux only).
func ReadStatus(pid int) (Status, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return Status{}, err
	}
	return parseStatus(b)
}

// parseStatus reads the VmRSS and VmHWM lines ("VmRSS:   1234 kB").
func parseStatus(b []byte) (Status, error) {
	var st Status
	found := 0
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		name, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok || (name != "VmRSS" && name != "VmHWM") {
			continue
		}
		f := strings.Fields(rest)
		if len(f) != 2 || f[1] != "kB" {
			return Status{}, fmt.Errorf("proc status: malformed %s line", name)
		}
		kb, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return Status{}, fmt.Errorf("proc status: %s: %w", name, err)
		}
		if name == "VmRSS" {
			st.RSS = kb << 10
		} else {
			st.Peak = kb << 10
		}
		found++
	}
	if found != 2 {
		return Status{}, fmt.Errorf("proc status: VmRSS or VmHWM missing")
	}
	return st, nil
}

// ResetPeak sets VmHWM of pid back to its VmRSS (writing "5" to
// /proc/<pid>/clear_refs, Linux 4.0 and later; the process must be ours).
func ResetPeak(pid int) error {
	return os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0)
}
