/**
 * The settings section of docs/operations.md, rendered from the tables of src/config/settings.ts
 * (scripts/gen-settings-doc.ts writes it between the two marker comments; a unit test fails when
 * the committed section differs from this rendering).
 */
import { EkmError } from '../errors.js';
import { EKM_PROTOCOL_WORKERS, SCRIPT_SETTINGS, SETTINGS, type Setting, TEST_SWITCHES, readInteger } from './settings.js';

export const SETTINGS_BEGIN = '<!-- settings:begin (generated from src/config/settings.ts by scripts/gen-settings-doc.ts: do not edit) -->';
export const SETTINGS_END = '<!-- settings:end -->';

const BOOLEAN_VALUES = '`1`, `true`, `yes`, `on` or `0`, `false`, `no`, `off`';

function allowed(s: Setting): string {
  switch (s.type) {
    case 'integer':
      return `${s.min} to ${s.max} (${s.unit})`;
    case 'enum':
      return s.values.map((v) => `\`${v}\``).join(' or ');
    case 'boolean':
      return BOOLEAN_VALUES;
    default:
      return s.format ?? 'one line';
  }
}

function shownDefault(s: Setting): string {
  if (s.type === 'boolean') return 'off';
  if (s.type === 'integer') return `${s.default}`;
  if (s.default !== undefined) return `\`${s.default}\``;
  return ('unsetMeans' in s && s.unsetMeans) || 'unset';
}

/** A table cell: a `|` would end it. */
const cell = (text: string): string => text.replaceAll('|', '\\|');

function table(settings: readonly Setting[]): string[] {
  return [
    '| variable | type | allowed | default | read by | meaning |',
    '| --- | --- | --- | --- | --- | --- |',
    ...settings
      .map((s) =>
        [
          `\`${s.name}\``,
          s.type + ('secret' in s && s.secret ? ' (secret)' : ''),
          allowed(s),
          shownDefault(s),
          s.readBy.join(', '),
          s.meaning,
        ]
          .map(cell)
          .join(' | '),
      )
      .map((row) => `| ${row} |`),
  ];
}

/** The line a bad value prints, as the code words it. */
function exampleError(): string {
  try {
    readInteger({ [EKM_PROTOCOL_WORKERS.name]: 'abc' }, EKM_PROTOCOL_WORKERS);
  } catch (e) {
    if (e instanceof EkmError) return `ekm: ${e.oneLine()}`;
  }
  throw new Error(`${EKM_PROTOCOL_WORKERS.name}=abc was accepted`);
}

/** The section's body, between the markers. */
export function settingsMarkdown(): string {
  return [
    'Every environment variable ekm reads. `ekm` and `ucl` check every one of them as they start, before they do anything:',
    'a bad value stops the command with one line naming the variable, the value and what is allowed (`EKM_BAD_SETTING`,',
    'exit 1), e.g.',
    '',
    '```',
    exampleError(),
    '```',
    '',
    "A secret's value is never shown. An empty value is the same as an unset one. A server reads them when it starts:",
    'restart it to change one. Under systemd set them in `/etc/default/ekm` (`/etc/sysconfig/ekm`), which the unit reads as',
    'its `EnvironmentFile`, or with `Environment=` in a drop-in.',
    '',
    ...table(SETTINGS),
    '',
    'Read only by shell scripts, which check them themselves:',
    '',
    ...table(SCRIPT_SETTINGS),
    '',
    '### Test and debugging switches',
    '',
    'Not settings: the test suite sets them (and a developer may set `EKM_DEBUG`). They are checked like the settings, but never',
    'set them on a server in production.',
    '',
    ...table(TEST_SWITCHES),
  ].join('\n');
}

/** `doc` with the text between the markers replaced by the rendered section; throws if a marker is missing. */
export function withSettingsSection(doc: string): string {
  const begin = doc.indexOf(SETTINGS_BEGIN);
  const end = doc.indexOf(SETTINGS_END);
  if (begin < 0 || end < begin) throw new Error(`the document has no ${SETTINGS_BEGIN} … ${SETTINGS_END} markers`);
  return `${doc.slice(0, begin + SETTINGS_BEGIN.length)}\n\n${settingsMarkdown()}\n\n${doc.slice(end)}`;
}
