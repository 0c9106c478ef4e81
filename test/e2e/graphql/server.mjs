// A small user-administration API in GraphQL, for elevate's end-to-end
// tests: one query and two mutations, served by the reference graphql
// implementation over plain HTTP (POST /graphql, JSON in and out).
//
//   node server.mjs PORT
//
// Each executed operation is written to stdout as one JSON line
// ({"op": "mutation", "fields": ["deleteUser"]}), so a test can tell what
// reached the server.
import http from "node:http";
import { buildSchema, graphql, parse } from "graphql";

const schema = buildSchema(`
  type User { id: ID!, name: String! }
  type Query { users: [User!]!, user(id: ID!): User }
  type Mutation {
    renameUser(id: ID!, name: String!): User
    deleteUser(id: ID!): Boolean!
  }
`);

const users = new Map([
  ["1", { id: "1", name: "ada" }],
  ["2", { id: "2", name: "bob" }],
  ["3", { id: "3", name: "eve" }],
]);

const root = {
  users: () => [...users.values()],
  user: ({ id }) => users.get(id) ?? null,
  renameUser: ({ id, name }) => {
    const u = users.get(id);
    if (!u) return null;
    u.name = name;
    return u;
  },
  deleteUser: ({ id }) => users.delete(id),
};

function topLevel(query, operationName) {
  try {
    const doc = parse(query);
    const ops = doc.definitions.filter((d) => d.kind === "OperationDefinition");
    const op = ops.find((o) => !operationName || o.name?.value === operationName) ?? ops[0];
    return { op: op.operation, fields: op.selectionSet.selections.map((s) => s.name?.value ?? s.kind) };
  } catch {
    return { op: "unparsed", fields: [] };
  }
}

const port = Number(process.argv[2] ?? process.env.PORT ?? 4000);
const server = http.createServer((req, res) => {
  if (req.method !== "POST" || req.url !== "/graphql") {
    res.writeHead(404, { "content-type": "application/json" });
    res.end(JSON.stringify({ errors: [{ message: "POST /graphql only" }] }));
    return;
  }
  const chunks = [];
  req.on("data", (c) => chunks.push(c));
  req.on("end", async () => {
    let body;
    try {
      body = JSON.parse(Buffer.concat(chunks).toString("utf8"));
    } catch {
      res.writeHead(400, { "content-type": "application/json" });
      res.end(JSON.stringify({ errors: [{ message: "the body is not JSON" }] }));
      return;
    }
    process.stdout.write(JSON.stringify(topLevel(String(body.query ?? ""), body.operationName)) + "\n");
    const result = await graphql({
      schema,
      source: String(body.query ?? ""),
      rootValue: root,
      variableValues: body.variables ?? undefined,
      operationName: body.operationName ?? undefined,
    });
    res.writeHead(200, { "content-type": "application/json" });
    res.end(JSON.stringify(result));
  });
});
server.listen(port, "127.0.0.1", () => {
  process.stdout.write(JSON.stringify({ listening: server.address().port }) + "\n");
});
process.on("SIGTERM", () => server.close(() => process.exit(0)));
