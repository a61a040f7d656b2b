/**
 * The two things the math takes from its callers: who a party is (its Shamir x-coordinate) and
 * where randomness comes from. They live here, under the protocols, because shares, proofs and
 * transcripts name parties and draw randomness too.
 */

/** EP = 1, Partner = 2, Aux = 3: the Shamir x-coordinate of each server's share. */
export type PartyId = 1 | 2 | 3;

/** Injected randomness: returns `n` uniformly random bytes. */
export type Rng = (n: number) => Uint8Array;
