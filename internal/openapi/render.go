package openapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

	"gopkg.in/yaml.v3"
)

// render writes the route table. Every string from the document goes
// through the YAML encoder (quoted as needed) or, in comments, is folded to
// one line first.
func render(d *Draft, kept, all []*op, dropped map[*op]string, title, kind, version, basePath, baseFrom string) ([]byte, error) {
	format := "OpenAPI " + version
	if kind == "swagger" {
		format = "Swagger " + version
	}
	head := []string{
		fmt.Sprintf("Route table drafted by `elevate catalog import` from %q (%s).", oneLine(title), format),
		describeBase(basePath, baseFrom),
		"GET and HEAD operations are drafted as reads (read: true), all others as changes; approval policies say which tasks need a grant.",
	}
	if len(d.Review) > 0 {
		head = append(head, "Review before use:")
		for _, r := range d.Review {
			head = append(head, "- "+oneLine(r))
		}
	}

	str := func(s string) *yaml.Node { return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: s} }
	tasks := &yaml.Node{Kind: yaml.MappingNode}
	routes := &yaml.Node{Kind: yaml.SequenceNode}
	for _, x := range kept {
		t := x.task
		v := &yaml.Node{Kind: yaml.MappingNode, Style: yaml.FlowStyle}
		if t.Read {
			v.Content = append(v.Content, str("read"), &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!bool", Value: "true"})
		}
		if t.Description != "" {
			v.Content = append(v.Content, str("description"), str(t.Description))
		}
		tasks.Content = append(tasks.Content, str(t.Name), v)
		routes.Content = append(routes.Content, str(t.Method+" "+t.Path+" -> "+t.Name))
	}
	var foot []string
	for _, x := range all {
		if general, gone := dropped[x]; gone {
			foot = append(foot, fmt.Sprintf("- %s %s -> %s   (left out: overlaps the route of %s)", x.task.Method, x.task.Path, x.task.Name, general))
		}
	}
	if len(foot) > 0 {
		routes.FootComment = strings.Join(foot, "\n")
	}
	doc := &yaml.Node{Kind: yaml.MappingNode, HeadComment: strings.Join(head, "\n"), Content: []*yaml.Node{
		str("upstream"), str(d.Upstream),
		str("tasks"), tasks,
		str("routes"), routes,
	}}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(&yaml.Node{Kind: yaml.DocumentNode, Content: []*yaml.Node{doc}}); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// jsonOf encodes a value decoded from YAML as JSON; mapping keys that YAML
// read as numbers (response codes such as 200) become strings.
func jsonOf(v any) ([]byte, error) {
	return json.Marshal(stringKeys(v))
}

func stringKeys(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			x[k] = stringKeys(e)
		}
		return x
	case map[any]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[fmt.Sprint(k)] = stringKeys(e)
		}
		return m
	case []any:
		for i, e := range x {
			x[i] = stringKeys(e)
		}
		return x
	}
	return v
}
