/**
 * Regenerates the settings section of docs/operations.md from src/config/settings.ts (the text
 * between the settings markers), formatted as the repository's Prettier configuration says, so
 * that `npm run format:check` keeps passing:
 *   node --import tsx scripts/gen-settings-doc.ts
 * test/unit/config/settings-doc.test.ts fails while the committed section differs.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as prettier from 'prettier';
import { withSettingsSection } from '../src/config/settings-doc.js';

export const OPERATIONS_DOC = join(resolve(import.meta.dirname, '..'), 'docs', 'operations.md');

/** docs/operations.md as it should be: `doc` with the generated section, Prettier-formatted. */
export async function generatedOperationsDoc(doc: string): Promise<string> {
  const options = (await prettier.resolveConfig(OPERATIONS_DOC)) ?? {};
  return prettier.format(withSettingsSection(doc), { ...options, filepath: OPERATIONS_DOC });
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  writeFileSync(OPERATIONS_DOC, await generatedOperationsDoc(readFileSync(OPERATIONS_DOC, 'utf8')));
}
