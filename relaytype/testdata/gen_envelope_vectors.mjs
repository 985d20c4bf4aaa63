// gen_envelope_vectors.mjs writes envelope_vectors.json: context-hash test
// vectors computed the way the seed's TypeScript SDK computed them, with no
// Go involved, so relaytype.ContextHash (RFC 8785 via gowebpki/jcs) can be
// checked against them byte for byte.
//
// The TypeScript algorithm: recursively rebuild every object with its keys
// in Array.prototype.sort order (UTF-16 code units), JSON.stringify the
// result, SHA-256 over the UTF-8 bytes, lowercase hex.
//
// Regenerate from the repository root:
//
//	node relaytype/testdata/gen_envelope_vectors.mjs
import { createHash } from "node:crypto";
import { writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

// sortKeys is the seed SDK's key sort, kept as it was written there: a new
// object filled in sorted key order, arrays mapped element by element.
function sortKeys(value) {
  if (Array.isArray(value)) {
    return value.map(sortKeys);
  }
  if (value !== null && typeof value === "object") {
    const out = {};
    for (const key of Object.keys(value).sort()) {
      out[key] = sortKeys(value[key]);
    }
    return out;
  }
  return value;
}

function canonicalTS(input) {
  return JSON.stringify(sortKeys(JSON.parse(input)));
}

// canonicalEmit writes members in sorted order directly instead of relying
// on object property order. It differs from canonicalTS only where
// JavaScript reorders properties itself: array-index keys such as "9" and
// "10" always enumerate first, in numeric order, which RFC 8785 does not do
// (and a "__proto__" key is not an own property of the rebuilt object).
// Every vector must agree under both, so no vector depends on those quirks.
function canonicalEmit(value) {
  if (Array.isArray(value)) {
    return "[" + value.map(canonicalEmit).join(",") + "]";
  }
  if (value !== null && typeof value === "object") {
    const parts = Object.keys(value)
      .sort()
      .map((k) => JSON.stringify(k) + ":" + canonicalEmit(value[k]));
    return "{" + parts.join(",") + "}";
  }
  return JSON.stringify(value);
}

const sha256 = (s) => createHash("sha256").update(s, "utf8").digest("hex");

// Inputs are JSON texts exactly as fed to the hash: JSON escapes such as
// \uD83D\uDE00 and the whitespace are part of the test. String.raw keeps
// JSON escapes as they are; raw characters come in through JavaScript
// escapes in ordinary strings.
const inputs = [
  ["minimal", String.raw`{"job_snapshot":{},"role":"default"}`],
  [
    "spec_typical",
    String.raw`{"job_snapshot":{"repo":"github.com/u/r","commit_sha":"0123456789abcdef0123456789abcdef01234567","env_profile":"prod","policy_version":"2.0"},"facts":{"branch":"main"},"tool_caps":{"database":{"timeout_ms":5000,"read_only":true}},"role":"code_reviewer"}`,
  ],
  [
    "html_quotes_backslash",
    String.raw`{"role":"default","job_snapshot":{},"facts":{"html":"<script>if (a < b && c > d) {}</script>","quote":"say \"hi\"","backslash":"C:\\path\\to\\file","solidus":"a\/b/c","amp":"&amp;&lt;&gt;"}}`,
  ],
  [
    // Escaped control characters, plus raw DEL (U+007F) and raw U+2028,
    // which neither JSON.stringify nor RFC 8785 escapes.
    "control_chars",
    String.raw`{"job_snapshot":{},"role":"default","facts":{"newline":"a\nb","tab":"a\tb","cr":"a\rb","bs":"a\bb","ff":"a\fb","u0001":"a\u0001b","u001f":"a\u001Fb","u007f":"a\u007fb","nul":"a\u0000b",` +
      '"raw_del":"a\u007fb","raw_u2028":"a\u2028b","escaped_u2028":"a\\u2028b"}}',
  ],
  [
    "non_ascii",
    String.raw`{"job_snapshot":{"repo":"github.com/café/中文"},"role":"réviseur","facts":{"raw":"é 中文 ü","escaped":"\u00e9 \u4E2D\u6587 \u00FC","mixed":"na\u00efve naïve"}}`,
  ],
  [
    "astral_plane",
    String.raw`{"job_snapshot":{},"role":"default","facts":{"raw":"😀 𝄞","escaped":"\uD83D\uDE00 \uD834\uDD1E","escaped_lower":"\ud83d\ude00\ud834\udd1e","mixed":"😀\uD834\uDD1E"}}`,
  ],
  [
    // U+E000 sorts before U+1F600 by UTF-8 bytes and by code point, but
    // after it by UTF-16 code units (the lead surrogate 0xD83D < 0xE000).
    // The facts keys are raw characters; the tool_caps keys are JSON
    // escapes.
    "key_order_utf16_vs_utf8",
    '{"job_snapshot":{},"role":"default","facts":{' +
      '"\u{1F600}":"U+1F600","\uE000":"U+E000","\uFFFF":"U+FFFF","z":"z","\u00f6":"o umlaut",' +
      '"a":"a","A":"A","_":"underscore","":"empty","~":"tilde","\u0080":"U+0080","\u00ff":"U+00FF",' +
      '"\u0100":"U+0100","aa":"aa","a_":"a_","B":"B","Z":"Z","x1":"x1","x10":"x10","x9":"x9"},' +
      String.raw`"tool_caps":{"\uE000":{"\uD83D\uDE00":1,"\uE000":2,"\uFFFF":3,"\uD800\uDC00":4},"z":{},"\u00f6":{},"\u00F6x":{}}}`,
  ],
  [
    "nested_objects",
    String.raw`{"tool_caps":{"zeta":{"y":{"b":1,"a":{"d":[],"c":{}}},"x":true},"alpha":{"limits":{"max":10,"min":1}}},"role":"default","job_snapshot":{"policy_version":"3.1","repo":"r"}}`,
  ],
  [
    "arrays",
    String.raw`{"job_snapshot":{},"role":"default","facts":{"numbers":[3,1,2],"empty":[],"nested":[[2,1],[],[[0]]],"objects":[{"b":1,"a":2},{"d":{"f":1,"e":2},"c":[{"y":1,"x":2}]}],"mixed":["b","a",null,true,1.5,{}]}}`,
  ],
  [
    "integers",
    String.raw`{"job_snapshot":{},"role":"default","facts":{"zero":0,"neg_zero":-0,"one":1,"minus_one":-1,"max_safe":9007199254740991,"min_safe":-9007199254740991,"exp_int":1E2,"dot_zero":1.0,"big":100000000000000000000}}`,
  ],
  [
    "floats",
    String.raw`{"job_snapshot":{},"role":"default","facts":{"tenth":0.1,"e21":1e21,"e_minus7":1e-7,"e_minus6":0.000001,"decimal":123.456,"huge":1.5e300,"negative":-2.5,"sum":0.30000000000000004,"max":1.7976931348623157e308,"min_subnormal":5e-324,"upper_e":2.5E+3,"neg_exp":-1.25e-10}}`,
  ],
  [
    "literals",
    String.raw`{"job_snapshot":{},"role":"default","facts":{"t":true,"f":false,"n":null},"tool_caps":{"fs":{"read_only":true,"write":false,"root":null}}}`,
  ],
  [
    "shuffled_keys",
    String.raw`{"role":"code_reviewer","tool_caps":{"database":{"read_only":true,"timeout_ms":5000}},"facts":{"branch":"main"},"job_snapshot":{"policy_version":"2.0","env_profile":"prod","commit_sha":"0123456789abcdef0123456789abcdef01234567","repo":"github.com/u/r"}}`,
  ],
  [
    "whitespace",
    '{\r\n\t"role" :  "code_reviewer" ,\n  "tool_caps": { "database": { "read_only": true , "timeout_ms": 5000 } },\n' +
      '  "facts" : {"branch":"main"},\n  "job_snapshot":{\n    "policy_version": "2.0",\n    "env_profile": "prod",\n' +
      '    "commit_sha": "0123456789abcdef0123456789abcdef01234567",\n    "repo": "github.com/u/r"\n  }\n}\n',
  ],
];

const vectors = inputs.map(([name, envelope]) => {
  const canonical = canonicalTS(envelope);
  const emitted = canonicalEmit(JSON.parse(envelope));
  if (canonical !== emitted) {
    throw new Error(`vector ${name} depends on JavaScript property order:\n${canonical}\n${emitted}`);
  }
  return { name, envelope, canonical, sha256: sha256(canonical) };
});

if (new Set(vectors.map((v) => v.name)).size !== vectors.length) {
  throw new Error("duplicate vector names");
}

// Inputs where the seed's algorithm is not RFC 8785: JavaScript enumerates
// array-index keys ("0".."4294967294") first, in numeric order, whatever
// the insertion order, and assigning out["__proto__"] sets the prototype
// instead of adding a key. relaytype follows RFC 8785 here, so these record
// what the TypeScript SDK did (canonical, sha256) next to the RFC 8785 form
// (jcs) for the test that pins the divergence down.
const divergentInputs = [
  ["array_index_keys", String.raw`{"job_snapshot":{},"role":"default","facts":{"10":"ten","9":"nine","a":"a"}}`],
  ["proto_key", String.raw`{"job_snapshot":{},"role":"default","facts":{"__proto__":"p","a":"a"}}`],
];

const divergences = divergentInputs.map(([name, envelope]) => {
  const canonical = canonicalTS(envelope);
  const jcs = canonicalEmit(JSON.parse(envelope));
  if (canonical === jcs) {
    throw new Error(`divergence ${name} does not diverge`);
  }
  return { name, envelope, canonical, sha256: sha256(canonical), jcs };
});

const here = dirname(fileURLToPath(import.meta.url));
for (const [file, data] of [
  ["envelope_vectors.json", vectors],
  ["envelope_divergences.json", divergences],
]) {
  writeFileSync(join(here, file), JSON.stringify(data, null, 2) + "\n");
  console.log(`wrote ${data.length} entries to ${file}`);
}
