/**
 * Renders the OpenAPI document as docs/api.md: one section per operation with who may call it,
 * its parameters and body (JSON Schema), its answers, and a curl example.
 * scripts/gen-api-doc.ts renders it from an API built in-process (no cluster needed), and
 * scripts/gen-docs.ts from a running EP along with docs/cli.md; from any EP by hand:
 *   curl -sk https://127.0.0.1:16643/api/v1/openapi.json > openapi.json
 *   node --import tsx src/api/openapi-markdown.ts openapi.json > docs/api.md
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

interface Op {
  summary: string;
  tags: string[];
  'x-access': string;
  parameters?: { name: string; in: string; required: boolean; schema: Record<string, unknown> }[];
  requestBody?: { content: { 'application/json': { schema: Record<string, unknown> } } };
  responses: Record<string, { description: string; content?: { 'application/json': { schema: Record<string, unknown> } } }>;
}

type Doc = { info: { version: string; description: string }; paths: Record<string, Record<string, Op>> };

/** A small example value for a JSON Schema (for curl bodies). */
function example(s: Record<string, unknown>, name = ''): unknown {
  if (s.default !== undefined) return s.default;
  if (Array.isArray(s.enum)) return s.enum[0];
  if (s.const !== undefined) return s.const;
  // One of several bodies: the first one shows the shape.
  const first = (s.anyOf ?? s.oneOf) as Record<string, unknown>[] | undefined;
  if (first?.[0]) return example(first[0], name);
  switch (s.type) {
    case 'object': {
      const props = (s.properties ?? {}) as Record<string, Record<string, unknown>>;
      const req = new Set((s.required ?? []) as string[]);
      return Object.fromEntries(Object.entries(props).filter(([k]) => req.has(k)).map(([k, v]) => [k, example(v, k)]));
    }
    case 'boolean':
      return true;
    case 'integer':
    case 'number':
      return 1;
    case 'string':
      if (/password/i.test(name)) return name === 'oldPassword' ? 'Old-pass-123' : 'New-pass-123';
      if (name === 'message' || name === 'signature') return 'aGVsbG8=';
      if (name === 'username') return 'alice@codesign';
      return name === 'name' ? 'codesign' : 'string';
    default:
      return null;
  }
}

const PATH_EXAMPLE: Record<string, string> = { keyId: 'release-signing', partition: 'codesign', user: 'alice' };

export type OpenApiDoc = Doc;

export function openApiMarkdown(doc: Doc): string {
  const out: string[] = [];
  out.push('# ekm REST API', '', `Generated from \`GET /api/v1/openapi.json\` (ekm ${doc.info.version}) by \`src/api/openapi-markdown.ts\`; do not edit by hand.`, '');
  out.push(doc.info.description, '');
  out.push(
    'Examples assume the EP at `https://127.0.0.1:16643` (as `npm start` runs it). `-k` skips certificate checks for brevity; a real client pins the EP certificate (`EKM_HOME/tls/server.crt`) by its SHA-256 fingerprint, as `ucl` does. HTTP Basic works on every authenticated route (`-u alice@codesign:Alice-pass-1`); the examples mostly use a bearer token. A token works on every EP of the cluster until it expires, its user logs out (`DELETE /api/v1/token`), its password is reset or changed, or the user or its partition is deleted.',
    '',
    '```sh',
    'EP=https://127.0.0.1:16643',
    "TOKEN=$(curl -sk $EP/api/v1/token -H 'content-type: application/json' -d '{\"username\":\"alice@codesign\",\"password\":\"Alice-pass-1\"}' | jq -r .access_token)",
    '```',
    '',
    '## Errors',
    '',
    'Every error is `{ "error": { "code": "EKM_…", "message": "…" } }` with a 4xx status (502 when a threshold protocol aborted, 503 when the triplet is out of service); never a stack trace. Codes seen: `EKM_BAD_REQUEST`, `EKM_UNAUTHORIZED`, `EKM_LOCKED`, `EKM_FORBIDDEN`, `EKM_NOT_FOUND`, `EKM_KEY_NOT_FOUND`, `EKM_KEY_NAME_TAKEN`, `EKM_KEY_DEACTIVATED` (409: the key may verify and decrypt only), `EKM_KEY_DESTROYED` (410), `EKM_EXISTS`, `EKM_WEAK_PASSWORD`, `EKM_NOT_FIPS`, `EKM_PARTITION_NOT_EMPTY`, `EKM_PROTOCOL_ABORTED`.',
    '',
    '## Response headers',
    '',
    'Every response carries `x-request-id` (the id of its audit row) and `Server-Timing: total;dur=<ms>`, the EP’s own time for the request; responses of sign, verify, encrypt, decrypt and data-key requests also carry `op;dur=<ms>`, the key service’s part of it (the threshold protocol and the check of its result). What a client measures above `total` is the network and the client itself.',
    '',
    '## Operations',
    '',
  );
  const ops = Object.entries(doc.paths).flatMap(([path, methods]) => Object.entries(methods).map(([m, op]) => ({ path, method: m.toUpperCase(), op })));
  const tags = [...new Set(ops.map((o) => o.op.tags[0]!))];
  for (const tag of tags) {
    out.push(`### ${tag}`, '');
    for (const { path, method, op } of ops.filter((o) => o.op.tags[0] === tag)) {
      out.push(`#### \`${method} ${path}\``, '', `${op.summary}. **Who:** ${op['x-access']}.`, '');
      if (op.parameters?.length) {
        out.push('| parameter | in | required | schema |', '|---|---|---|---|');
        for (const p of op.parameters) out.push(`| \`${p.name}\` | ${p.in} | ${p.required ? 'yes' : 'no'} | \`${JSON.stringify(p.schema).replace(/\|/g, '\\|')}\` |`);
        out.push('');
      }
      const body = op.requestBody?.content['application/json'].schema;
      if (body) out.push('Body:', '', '```json', JSON.stringify(body, null, 2), '```', '');
      out.push('Answers: ' + Object.entries(op.responses).map(([s, r]) => `**${s}** ${r.description}`).join('; ') + '.', '');
      const ok = Object.entries(op.responses).find(([s]) => s.startsWith('2'))?.[1].content?.['application/json'].schema;
      if (ok) out.push('<details><summary>200/201 schema</summary>', '', '```json', JSON.stringify(ok, null, 2), '```', '', '</details>', '');
      const url = path.replace(/\{(\w+)\}/g, (_, n: string) => PATH_EXAMPLE[n] ?? n);
      const auth = op['x-access'] === 'public' ? '' : path.startsWith('/api/v1/partitions') && method !== 'GET' ? " -u 'so@codesign:Codesign-SO-1'" : ' -H "authorization: Bearer $TOKEN"';
      const data = body ? ` -H 'content-type: application/json' -d '${JSON.stringify(example(body))}'` : '';
      out.push('```sh', `curl -sk${method === 'GET' ? '' : ` -X ${method}`}${auth}${data} "$EP${url}"`, '```', '');
    }
  }
  return `${out.join('\n')}\n`;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  process.stdout.write(openApiMarkdown(JSON.parse(readFileSync(process.argv[2] ?? 0, 'utf8')) as Doc));
}
