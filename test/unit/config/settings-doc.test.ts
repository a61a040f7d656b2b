/** docs/operations.md's settings section is the one scripts/gen-settings-doc.ts renders from src/config/settings.ts. */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { OPERATIONS_DOC, generatedOperationsDoc } from '../../../scripts/gen-settings-doc.js';
import { SCRIPT_SETTINGS, SETTINGS, TEST_SWITCHES } from '../../../src/config/settings.js';

describe('docs/operations.md settings section', () => {
  it('is the generated one (run node --import tsx scripts/gen-settings-doc.ts after changing a setting)', async () => {
    const committed = readFileSync(OPERATIONS_DOC, 'utf8');
    assert.equal(committed, await generatedOperationsDoc(committed));
  });

  it('names every variable of the three tables', () => {
    const committed = readFileSync(OPERATIONS_DOC, 'utf8');
    for (const s of [...SETTINGS, ...SCRIPT_SETTINGS, ...TEST_SWITCHES]) assert.ok(committed.includes(`| \`${s.name}\``), s.name);
  });
});
