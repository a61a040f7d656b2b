/**
 * `EKM_AES_OBJECT_FORMAT`: the format in which an EP seals new AES objects (docs/protocols.md §8.1).
 * Unset, 2. During a rolling upgrade of a cluster from a release that opens only format 1, set 1 on
 * the upgraded EPs until every triplet runs this release, so that any EP opens what any other
 * sealed (docs/operations.md §11.4). Objects of either format always open.
 */
import { EkmError } from '../errors.js';

/**
 * The format the setting names (protocols/dprf.ts's ObjectFormat), or undefined when unset: the
 * protocol's own current format. A setting reads the environment and knows no protocol.
 */
export function aesObjectFormatFromEnv(value: string | undefined): 1 | 2 | undefined {
  if (value === undefined || value === '') return undefined;
  if (value === '1' || value === '2') return Number(value) as 1 | 2;
  throw new EkmError(
    'EKM_BAD_CONFIG',
    `EKM_AES_OBJECT_FORMAT is ${JSON.stringify(value.slice(0, 40))}, not 1 or 2`,
    'unset it (new AES objects in format 2), or set 1 while older releases still serve this cluster',
  );
}
