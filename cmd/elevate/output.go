package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
)

// show prints v for cmd: indented JSON with -o json, the stable format for
// scripts, else as asTable writes it for people.
func show[T any](cmd *cobra.Command, g *globals, v T, asTable func(io.Writer, T) error) error {
	if g.output == "json" {
		return printJSON(cmd.OutOrStdout(), v)
	}
	return asTable(cmd.OutOrStdout(), v)
}

// marshalJSON encodes v as compact JSON, without HTML escaping.
func marshalJSON(v any) ([]byte, error) { return marshalIndent(v, "", "") }

// marshalIndent encodes v as JSON indented as json.MarshalIndent does, but
// without HTML escaping: `<`, `>` and `&` stay as they are, so that commands
// and reasons can be copied.
func marshalIndent(v any, prefix, indent string) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent(prefix, indent)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// printJSON writes v as indented JSON: the stable format for scripts.
// Nothing is HTML-escaped.
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// table writes aligned columns, under header unless it is nil.
func table(w io.Writer, header []string, rows [][]string) error {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	if header != nil {
		fmt.Fprintln(tw, strings.Join(header, "\t"))
	}
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	return tw.Flush()
}

// fields writes "key: value" lines, aligned.
func fields(w io.Writer, kv [][2]string) error {
	tw := tabwriter.NewWriter(w, 2, 4, 1, ' ', 0)
	for _, p := range kv {
		if p[1] == "" {
			continue
		}
		fmt.Fprintf(tw, "%s:\t%s\n", p[0], p[1])
	}
	return tw.Flush()
}

// ts is how tables show a time: in UTC, RFC 3339 to the second.
func ts(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format("2006-01-02T15:04:05Z")
}
