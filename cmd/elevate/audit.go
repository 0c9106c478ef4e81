package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/elevate-pam/elevate/audit"
)

func auditCmd(g *globals) *cobra.Command {
	c := &cobra.Command{Use: "audit", Short: "Query and verify the audit log"}
	c.AddCommand(auditQueryCmd(g), auditVerifyCmd(g))
	return c
}

// auditQueryCmd reads pages of GET /v1/audit, all of them with --all,
// printing each as it arrives (see recordsOut).
func auditQueryCmd(g *globals) *cobra.Command {
	var subject, task, upstream, decision, request, trace, since, until, cursor string
	var limit int
	var all bool
	c := &cobra.Command{
		Use:   "query [--subject S] [--task T] [--upstream U] [--decision D] [--request ID] [--trace ID] [--since T] [--until T] [--limit N] [--cursor C | --all]",
		Short: "Query audit records (auditors see all, others their own)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			q := url.Values{}
			if all && cursor != "" {
				return usageError("--all and --cursor: give one or the other")
			}
			for k, v := range map[string]string{"subject": subject, "task": task, "upstream": upstream, "decision": decision, "request": request, "trace": trace} {
				if v != "" {
					q.Set(k, v)
				}
			}
			for k, v := range map[string]string{"since": since, "until": until} {
				if v == "" {
					continue
				}
				t, err := parseWhen(v)
				if err != nil {
					return usageError("--%s: %v", k, err)
				}
				q.Set(k, t.UTC().Format(time.RFC3339))
			}
			switch {
			case limit > 0:
				q.Set("limit", strconv.Itoa(limit))
			case all:
				q.Set("limit", "1000") // the fewest calls
			}
			cl, err := newClient(g)
			if err != nil {
				return err
			}
			out := newRecordsOut(cmd, g.output == "json")
			for {
				if cursor != "" {
					q.Set("cursor", cursor)
				}
				var p struct {
					Records []audit.Record `json:"records"`
					Next    string         `json:"next"`
				}
				if err := cl.do(cmd.Context(), "GET", "/v1/audit?"+q.Encode(), nil, &p); err != nil {
					return out.abort(err, cursor)
				}
				if err := out.page(p.Records); err != nil {
					return err
				}
				if !all || p.Next == "" {
					cursor = p.Next
					break
				}
				cursor = p.Next
			}
			if err := out.end(cursor); err != nil {
				return err
			}
			if cursor != "" && !out.json {
				fmt.Fprintf(cmd.ErrOrStderr(), "more records: --cursor %s (or --all)\n", cursor)
			}
			return nil
		},
	}
	c.Flags().StringVar(&subject, "subject", "", "only records of this subject")
	c.Flags().StringVar(&task, "task", "", "only records of this task (a call's, or one of its operations')")
	c.Flags().StringVar(&upstream, "upstream", "", "only records of calls to this upstream")
	c.Flags().StringVar(&decision, "decision", "", "only this event (allowed, denied, grant_required, unauthenticated, request.approved, ...)")
	c.Flags().StringVar(&request, "request", "", "only records of this access request")
	c.Flags().StringVar(&since, "since", "", "from this time (RFC 3339, or a duration ago such as 1h)")
	c.Flags().StringVar(&until, "until", "", "up to this time (RFC 3339, or a duration ago)")
	c.Flags().StringVar(&trace, "trace", "", "only records of this trace id")
	c.Flags().IntVar(&limit, "limit", 0, "records per page, 1 to 1000 (default 100)")
	c.Flags().StringVar(&cursor, "cursor", "", "the page after this cursor (printed after a full page)")
	c.Flags().BoolVar(&all, "all", false, "follow every page, printing each as it arrives")
	return c
}

func auditVerifyCmd(g *globals) *cobra.Command {
	var dataDir string
	c := &cobra.Command{
		Use:   "verify [FILE...]",
		Short: "Check the hash chain of an audit log (default DATA_DIR/audit.log and its rotated files)",
		Args:  cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			files := args
			if len(files) == 0 {
				if _, err := os.Stat(dataDir); errors.Is(err, fs.ErrNotExist) {
					return fmt.Errorf("no data directory %s to find audit.log in: run this where elevate serve --dev runs, "+
						"give its data directory with --data-dir or ELEVATE_DATA_DIR, or name the log: elevate audit verify FILE", dataDir)
				}
				// One path: Verify reads its whole rotated set, oldest first,
				// and names a missing file.
				files = []string{filepath.Join(dataDir, "audit.log")}
			}
			rep, err := audit.Verify(files...)
			if err != nil {
				return err
			}
			return show(cmd, g, rep, verifyTable)
		},
	}
	dataDirFlag(c, &dataDir, "data directory whose audit.log to verify when no FILE is given")
	return c
}

func verifyTable(w io.Writer, rep audit.Report) error {
	_, err := fmt.Fprintf(w, "ok: %d records in %d file(s), chain intact, last hash %s\n", rep.Records, rep.Files, rep.LastHash)
	return err
}

func parseWhen(v string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, v); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(v); err == nil && d > 0 {
		return time.Now().Add(-d), nil
	}
	return time.Time{}, fmt.Errorf("%q is neither an RFC 3339 time nor a duration", v)
}

// callText is a call record's method, path and query, and the operations
// of its judged body.
func callText(r audit.Record) string {
	s := r.Method + " " + r.Path
	if r.Query != "" {
		s += "?" + r.Query
	}
	for i, op := range r.Operations {
		sep := ", "
		if i == 0 {
			sep = " "
		}
		s += sep + op.Name
	}
	return s
}

func statusText(s int) string {
	if s == 0 {
		return ""
	}
	return strconv.Itoa(s)
}

// recordsOut prints audit records page by page as they arrive: table rows,
// or JSON of the shape of one page, {"records": [...], "next": "..."},
// written a record at a time. Nothing printed is taken back: when a page
// fails, the JSON is closed with the cursor to go on from.
type recordsOut struct {
	w     io.Writer
	json  bool
	n     int // records printed
	pages int
}

func newRecordsOut(cmd *cobra.Command, asJSON bool) *recordsOut {
	return &recordsOut{w: cmd.OutOrStdout(), json: asJSON}
}

func (o *recordsOut) page(recs []audit.Record) error {
	o.pages++
	if o.json {
		for _, r := range recs {
			b, err := marshalIndent(r, "    ", "  ")
			if err != nil {
				return err
			}
			sep := ",\n    "
			if o.n == 0 {
				sep = "{\n  \"records\": [\n    "
			}
			if _, err := fmt.Fprintf(o.w, "%s%s", sep, b); err != nil {
				return err
			}
			o.n++
		}
		return nil
	}
	rows := make([][]string, 0, len(recs))
	for _, r := range recs {
		rows = append(rows, []string{ts(r.Time), r.Event, r.Subject, r.Task, callText(r), statusText(r.Status), r.RequestID, r.TraceID})
	}
	var header []string
	if o.pages == 1 {
		header = []string{"TIME", "EVENT", "SUBJECT", "TASK", "CALL", "STATUS", "REQUEST", "TRACE"}
	}
	o.n += len(recs)
	return table(o.w, header, rows)
}

// end closes the output; next is the cursor of the page after the last.
func (o *recordsOut) end(next string) error {
	if !o.json {
		return nil
	}
	nb, err := marshalJSON(next)
	if err != nil {
		return err
	}
	open := "{\n  \"records\": []"
	if o.n > 0 {
		open = "\n  ]"
	}
	_, err = fmt.Fprintf(o.w, "%s,\n  \"next\": %s\n}\n", open, nb)
	return err
}

// abort ends the output after err failed the page at cursor, and returns
// err with the way to go on, keeping its exit status.
func (o *recordsOut) abort(err error, cursor string) error {
	if o.pages == 0 {
		return err
	}
	if e := o.end(cursor); e != nil {
		return e
	}
	code, msg := exitFailed, err.Error()
	var ee exitError
	if errors.As(err, &ee) {
		code, msg = ee.code, ee.msg
	}
	return exitError{code: code, msg: fmt.Sprintf("%s; %d records printed; go on with --cursor %s", msg, o.n, cursor)}
}
