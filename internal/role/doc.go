// Package role holds what the Answer Runner answers through: the role
// catalog (built-in roles embedded in the binary, overridden or extended by
// prompts/role.NAME@vN.yaml), the named output schemata (schemata/*.json,
// JSON Schema 2020-12) with answer validation, and the layered prompt
// (base, role, context, task) with its fingerprint and the parsing of a
// model's reply.
package role
