package proxy

// GraphQL bodies: the operation type and the top-level fields of one
// operation, each judged as its own call.

import (
	"fmt"
	"net/http"

	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/parser"

	"github.com/elevate-pam/elevate/policy"
)

// maxGraphQLTokens bounds the tokens of a judged GraphQL document, and
// with them the depth the parser recurses to.
const maxGraphQLTokens = 15000

// graphqlMembers are the members a judged GraphQL request may have. Any
// other could name a stored document the server runs instead of the
// query that was judged (id, documentId, doc_id, queryId, ...).
var graphqlMembers = map[string]bool{"query": true, "operationName": true, "variables": true, "extensions": true}

// graphqlJudged reads a GraphQL request (a JSON object with query and
// optionally operationName, variables and extensions): the query must be
// one operation, and each of its top-level fields (aliases resolved,
// fragment spreads and inline fragments expanded) is an Operation named
// "TYPE FIELD" whose input.body is {operation, field, name, variables}.
// A persisted-query reference without the query is refused: what it runs
// cannot be judged.
func graphqlJudged(b []byte, rt *route, spec policy.BodySpec) (*judgedBody, *bodyRefusal) {
	v, err := parseJSON(b)
	if err != nil {
		return nil, jsonRefusal(err, b)
	}
	refuse := func(detail string) (*judgedBody, *bodyRefusal) {
		return nil, &bodyRefusal{prob: NewProblem(http.StatusBadRequest, "bad-body", detail), reason: detail, digest: b}
	}
	req, ok := v.(map[string]any)
	if !ok {
		return refuse("a GraphQL request is one JSON object with a query (batches are not judged)")
	}
	for k := range req {
		if !graphqlMembers[k] {
			return refuse(fmt.Sprintf("a GraphQL request may hold only query, operationName, variables and extensions, not %q", truncate(k, 64)))
		}
	}
	query, _ := req["query"].(string)
	if query == "" {
		if ext, _ := req["extensions"].(map[string]any); ext != nil && ext["persistedQuery"] != nil {
			return refuse("a persisted query is judged only with its query text")
		}
		return refuse("a GraphQL request carries its query as a string")
	}
	opName, isString := req["operationName"].(string)
	if !isString && req["operationName"] != nil {
		return refuse("operationName is a string")
	}
	vars := req["variables"]
	switch vars.(type) {
	case map[string]any:
	case nil:
		vars = map[string]any{}
	default:
		return refuse("variables are an object")
	}
	if ext := req["extensions"]; ext != nil {
		if _, ok := ext.(map[string]any); !ok {
			return refuse("extensions are an object")
		}
	}

	doc, gerr := parser.ParseQueryWithTokenLimit(&ast.Source{Input: query}, maxGraphQLTokens)
	if gerr != nil {
		return refuse("the GraphQL query does not parse: " + gerr.Error())
	}
	if len(doc.Operations) != 1 {
		return refuse(fmt.Sprintf("a GraphQL query is judged only when it holds one operation; this one holds %d", len(doc.Operations)))
	}
	op := doc.Operations[0]
	if opName != "" && opName != op.Name {
		return refuse("operationName does not name the query's operation")
	}
	fields, why := topFields(op.SelectionSet, doc.Fragments, map[string]bool{})
	if why != "" {
		return refuse(why)
	}
	jb := &judgedBody{raw: b, forward: b, ops: make([]Operation, 0, len(fields))}
	for _, f := range fields {
		body := map[string]any{"operation": string(op.Operation), "field": f.Name, "name": op.Name, "variables": vars}
		jb.ops = append(jb.ops, Operation{Name: string(op.Operation) + " " + f.Name, Body: body, Fields: recordFields(body, spec.Record, rt)})
	}
	return jb, nil
}

// topFields are the fields a selection set selects at its own level:
// its fields, and those of the fragments it spreads and of its inline
// fragments, however nested, in order; at most MaxBatch of them. inSpread
// holds the fragments being expanded, so that a cycle is refused rather
// than followed.
func topFields(set ast.SelectionSet, frags ast.FragmentDefinitionList, inSpread map[string]bool) ([]*ast.Field, string) {
	var out []*ast.Field
	var walk func(set ast.SelectionSet) string
	walk = func(set ast.SelectionSet) string {
		for _, sel := range set {
			switch s := sel.(type) {
			case *ast.Field:
				if len(out) == MaxBatch {
					return fmt.Sprintf("a GraphQL query is judged only when it selects at most %d top-level fields", MaxBatch)
				}
				out = append(out, s)
			case *ast.InlineFragment:
				if why := walk(s.SelectionSet); why != "" {
					return why
				}
			case *ast.FragmentSpread:
				def := frags.ForName(s.Name)
				if def == nil {
					return fmt.Sprintf("the GraphQL query spreads fragment %q, which it does not define", truncate(s.Name, 64))
				}
				if inSpread[s.Name] {
					return fmt.Sprintf("the GraphQL query's fragment %q spreads itself", truncate(s.Name, 64))
				}
				inSpread[s.Name] = true
				why := walk(def.SelectionSet)
				delete(inSpread, s.Name)
				if why != "" {
					return why
				}
			}
		}
		return ""
	}
	if why := walk(set); why != "" {
		return nil, why
	}
	return out, ""
}
