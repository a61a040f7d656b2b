/**
 * Text that came from outside, made safe to store, hash and show. JavaScript strings are UTF-16
 * and may hold lone surrogates (a JSON "\ud800", or a pair cut in half by `slice`); stores keep
 * UTF-8, where a lone surrogate has no encoding, so SQLite and PostgreSQL store U+FFFD instead and
 * a hash taken of the JavaScript string no longer matches what is read back. PostgreSQL refuses
 * NUL in text outright. Control and bidirectional-override characters store fine but let a value
 * rewrite a terminal line or reorder what an operator reads.
 */

const REPLACEMENT = '\uFFFD';
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;
/** C0 controls but tab, line feed and carriage return; DEL; C1 controls: refused in free text. */
// eslint-disable-next-line no-control-regex -- matching control characters is the point
const CONTROL = /[\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F-\u009F]/;
/** Every control character, line breaks included: replaced in what is shown one line per value. */
// eslint-disable-next-line no-control-regex -- matching control characters is the point
const ANY_CONTROL_G = /[\u0000-\u001F\u007F-\u009F]/g;
/** Bidirectional embeddings, overrides and isolates (U+202A–U+202E, U+2066–U+2069). */
const BIDI_CONTROL_G = /[\u202A-\u202E\u2066-\u2069]/g;

/** Whether `s` is well-formed UTF-16 (no lone surrogate) without NUL or other control characters. */
export function isCleanText(s: string): boolean {
  LONE_SURROGATE.lastIndex = 0;
  return !LONE_SURROGATE.test(s) && !CONTROL.test(s);
}

/** What is wrong with `s` for `isCleanText`, in words, or undefined. */
export function textProblem(s: string): string | undefined {
  LONE_SURROGATE.lastIndex = 0;
  if (LONE_SURROGATE.test(s)) return 'is not well-formed Unicode (a lone surrogate)';
  if (CONTROL.test(s)) return 'holds a control character (NUL, escape or the like)';
  return undefined;
}

/**
 * Characters that render as nothing: Unicode's default-ignorable code points (zero-width spaces
 * and joiners, bidirectional marks and controls, variation selectors, the soft hyphen, …).
 */
const INVISIBLE = /\p{Default_Ignorable_Code_Point}/u;
/** Whitespace other than the plain space (tab, no-break, em, ideographic spaces…). */
const OTHER_SPACE = /[^\S ]/u;
/** Scripts whose letters pass for one another (Latin `a`, Cyrillic `а`, Greek `α`…). */
const LOOK_ALIKE_SCRIPTS = ['Latin', 'Greek', 'Cyrillic', 'Armenian', 'Cherokee', 'Coptic'] as const;
const SCRIPT_RE = LOOK_ALIKE_SCRIPTS.map((script) => [script, new RegExp(`\\p{Script=${script}}`, 'u')] as const);

/**
 * What makes `name` render like another name, in words, or undefined: an invisible character, a
 * space other than the plain one or a trailing space, a form that Unicode NFKC would change
 * (decomposed accents, full-width letters, ligatures), or letters of look-alike scripts mixed
 * (a Cyrillic `а` in a Latin name). For identifiers people pick by reading them (key names).
 */
export function lookAlikeProblem(name: string): string | undefined {
  if (INVISIBLE.test(name)) return 'holds an invisible character (zero-width, bidirectional control or the like)';
  if (OTHER_SPACE.test(name)) return 'holds a space other than the plain space';
  if (name !== name.trimEnd()) return 'ends with a space';
  const nfkc = name.normalize('NFKC');
  if (nfkc !== name) return `is not in Unicode NFKC form (it would read the same as "${safeText(nfkc, 64)}")`;
  const scripts = SCRIPT_RE.filter(([, re]) => re.test(name)).map(([script]) => script);
  if (scripts.length > 1) return `mixes ${scripts.join(' and ')} letters, which look alike`;
  return undefined;
}

/** What reorders how free text (a description) is shown: a bidirectional embedding, override or isolate. */
export function reorderingProblem(s: string): string | undefined {
  BIDI_CONTROL_G.lastIndex = 0;
  return BIDI_CONTROL_G.test(s) ? 'holds a bidirectional control (embedding, override or isolate) that reorders what is shown' : undefined;
}

/** The first `max` code points of `s`: never half of a surrogate pair. */
export function cutCodePoints(s: string, max: number): string {
  if (s.length <= max) return s;
  return Array.from(s).slice(0, max).join('');
}

/**
 * `s` as a store keeps it and a terminal shows it on one line, at most `max` code points: lone
 * surrogates, control characters (line breaks too) and bidirectional overrides each become U+FFFD.
 * Idempotent.
 */
export function safeText(s: string, max: number): string {
  return cutCodePoints(s, max).replace(LONE_SURROGATE, REPLACEMENT).replace(ANY_CONTROL_G, REPLACEMENT).replace(BIDI_CONTROL_G, REPLACEMENT);
}
