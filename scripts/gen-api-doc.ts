/**
 * Regenerates docs/api.md from the OpenAPI document of this code, without a running cluster: the
 * API is built on a triplet started in this process (test/support/api-triplet.ts), as the API
 * tests do. scripts/gen-docs.ts writes the same file from a live EP along with docs/cli.md.
 *   node --import tsx scripts/gen-api-doc.ts
 */
import { writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { type OpenApiDoc, openApiMarkdown } from '../src/api/openapi-markdown.js';
import { startApiTriplet } from '../test/support/api-triplet.js';

export const API_DOC = join(resolve(import.meta.dirname, '..'), 'docs', 'api.md');

/** docs/api.md as this code documents its routes. */
export async function apiMarkdown(): Promise<string> {
  const t = await startApiTriplet();
  try {
    const d = await t.call<OpenApiDoc>({ method: 'GET', path: '/openapi.json' });
    return openApiMarkdown(d.body);
  } finally {
    await t.close();
  }
}

if (import.meta.filename === process.argv[1]) {
  writeFileSync(API_DOC, await apiMarkdown());
  process.stdout.write(`wrote ${API_DOC}\n`);
}
