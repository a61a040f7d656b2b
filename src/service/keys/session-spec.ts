/** How a key family describes one protocol session to the ProtocolHost (protocol-host.ts). */
import type { KeyWrite } from '../../store/key-records.js';
import { type Recipe, runsInline } from '../party-recipes.js';
import type { SessionSpec } from '../protocol-host.js';

/** Maps a party's persist items to the store writes that make them durable before it sends. */
export type ToWrites<P> = (items: readonly P[], sid: string) => KeyWrite[];

export interface SpecOptions {
  /** Writes that make the party's output durable (a helper's presignature share). */
  readonly outputWrites?: (out: unknown) => KeyWrite[];
  /** A DPRF helper's batch size, which decides where its party runs (runsInline). */
  readonly objects?: number;
}

export function sessionSpec<P>(recipe: Recipe, label: string, toWrites: ToWrites<P>, opts: SpecOptions = {}): SessionSpec {
  return {
    recipe,
    label,
    toWrites: toWrites as SessionSpec['toWrites'],
    ...(opts.outputWrites ? { outputWrites: opts.outputWrites } : {}),
    inline: runsInline(recipe, opts.objects),
  };
}

/** The persist items of sessions that change no stored state (signing, decryption, derivation). */
export function noWrites(): KeyWrite[] {
  return [];
}
