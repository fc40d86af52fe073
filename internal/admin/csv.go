package admin

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// CSVHeader is the header of an export, and the columns an import reads:
// address is required; tenant ("" for the global list), reason (default
// manual), added and expires (RFC 3339) are optional.
const CSVHeader = "address,tenant,reason,added,expires"

// LineError is one broken line of a CSV import.
type LineError struct {
	Line    int    `json:"line"`
	Message string `json:"message"`
}

// maxLineErrors bounds the broken lines an answer lists.
const maxLineErrors = 1000

// importBatch is how many entries go to Suppressions.Add at once.
const importBatch = 500

// parseCSV reads a suppression CSV. It returns the valid entries and every
// broken line (at most maxLineErrors listed; bad counts them all). err is
// set only when the input cannot be read at all (too large, too many lines).
func parseCSV(r io.Reader, maxLines int, now time.Time, known func(string) error) (good []Suppression, broken []LineError, bad int, err error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	cr.TrimLeadingSpace = true
	cr.Comment = '#'
	cr.ReuseRecord = true
	brokenLine := func(line int, msg string) {
		bad++
		if len(broken) < maxLineErrors {
			broken = append(broken, LineError{Line: line, Message: msg})
		}
	}
	for n := 0; ; n++ {
		rec, rerr := cr.Read()
		if rerr == io.EOF {
			return good, broken, bad, nil
		}
		if n >= maxLines {
			return nil, nil, 0, &apiError{Status: http.StatusRequestEntityTooLarge, Code: "too_large", Message: fmt.Sprintf("more than %d lines", maxLines)}
		}
		var pe *csv.ParseError
		if errors.As(rerr, &pe) {
			brokenLine(pe.Line, pe.Err.Error())
			continue
		}
		if rerr != nil {
			return nil, nil, 0, rerr
		}
		line, _ := cr.FieldPos(0)
		if n == 0 && strings.EqualFold(strings.TrimSpace(rec[0]), "address") {
			continue // header
		}
		if len(rec) > 5 {
			brokenLine(line, fmt.Sprintf("%d fields, want at most 5 (%s)", len(rec), CSVHeader))
			continue
		}
		field := func(i int) string {
			if i < len(rec) {
				return strings.TrimSpace(rec[i])
			}
			return ""
		}
		s := Suppression{Address: field(0), Tenant: field(1), Reason: field(2)}
		var terr error
		if s.Added, terr = parseTime(field(3)); terr != nil {
			brokenLine(line, "added: "+terr.Error())
			continue
		}
		if s.Expires, terr = parseTime(field(4)); terr != nil {
			brokenLine(line, "expires: "+terr.Error())
			continue
		}
		if nerr := normalizeSuppression(&s, now, known); nerr != nil {
			ae := toAPIError(nerr)
			if ae.Status >= 500 {
				return nil, nil, 0, nerr // the tenant check failed, not the line
			}
			brokenLine(line, ae.Message)
			continue
		}
		good = append(good, s)
	}
}

func parseTime(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("want RFC 3339, got %q", truncate(s, 40))
	}
	return t, nil
}

// ImportResult answers an import.
type ImportResult struct {
	Mode     string      `json:"mode"`
	Imported int         `json:"imported"`
	Rejected int         `json:"rejected"`
	Lines    []LineError `json:"lines,omitempty"` // the rejected lines (at most 1000)
}

func (r ImportResult) auditDetail() string {
	return fmt.Sprintf("mode %s: %d imported, %d rejected", r.Mode, r.Imported, r.Rejected)
}

// Import modes.
const (
	ImportAll   = "all"   // any broken line: import nothing
	ImportValid = "valid" // import the valid lines, report the others
)

func (h *Handler) importSuppressions(w http.ResponseWriter, r *http.Request, target *string) (int, any, error) {
	mode := r.URL.Query().Get("mode")
	*target = "mode=" + truncate(mode, 20)
	switch mode {
	case "":
		mode = ImportAll
		*target = "mode=" + mode
	case ImportAll, ImportValid:
	default:
		return 0, nil, badRequest("mode: want %s or %s", ImportAll, ImportValid)
	}
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(ct, "text/csv") && !strings.HasPrefix(ct, "text/plain") {
		return 0, nil, &apiError{Status: http.StatusUnsupportedMediaType, Code: "unsupported_media_type", Message: "want Content-Type: text/csv"}
	}
	body := http.MaxBytesReader(w, r.Body, h.maxImport)
	good, broken, bad, err := parseCSV(body, h.maxLines, h.now().UTC(), h.tenantChecker(r.Context()))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return 0, nil, &apiError{Status: http.StatusRequestEntityTooLarge, Code: "too_large", Message: fmt.Sprintf("body over %d bytes", mbe.Limit)}
		}
		return 0, nil, err
	}
	if bad > 0 && mode == ImportAll {
		return 0, nil, &apiError{
			Status: http.StatusBadRequest, Code: "invalid_csv", Lines: broken,
			Message: fmt.Sprintf("%d broken lines; nothing imported (mode=valid imports the valid lines)", bad),
		}
	}
	res := ImportResult{Mode: mode, Rejected: bad, Lines: broken}
	for i := 0; i < len(good); i += importBatch {
		batch := good[i:min(i+importBatch, len(good))]
		if err := h.suppressions.Add(r.Context(), batch); err != nil {
			return 0, nil, fmt.Errorf("after %d imported: %w", res.Imported, err)
		}
		res.Imported += len(batch)
	}
	return http.StatusOK, res, nil
}

// exportSuppressions streams a CSV (CSVHeader), page by page. An error
// after the first page cuts the output short; it is logged, and the
// trailer "# error" line tells a reader the export is incomplete.
func (h *Handler) exportSuppressions(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), h.bulkTimeout)
	defer cancel()
	q, err := listQuery(r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	q.Limit = MaxListLimit
	page, next, err := h.suppressions.List(ctx, q)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="suppressions.csv"`)
	cw := csv.NewWriter(w)
	_ = cw.Write(strings.Split(CSVHeader, ","))
	for {
		for _, s := range page {
			exp := ""
			if !s.Expires.IsZero() {
				exp = s.Expires.UTC().Format(time.RFC3339)
			}
			_ = cw.Write([]string{s.Address, s.Tenant, s.Reason, s.Added.UTC().Format(time.RFC3339), exp})
		}
		cw.Flush()
		if err := cw.Error(); err != nil {
			return // client gone
		}
		if next == "" {
			return
		}
		q.Cursor = next
		if page, next, err = h.suppressions.List(ctx, q); err != nil {
			h.log.Error("admin export cut short", "request_id", callerOf(r).requestID, "error", err)
			_, _ = io.WriteString(w, "# error: export incomplete\n")
			return
		}
	}
}
