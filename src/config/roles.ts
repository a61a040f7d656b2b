/** The three server roles of a triplet. Kept apart from the configuration schema so that the CLI can name roles without loading zod. */
export const ROLES = ['ep', 'partner', 'aux'] as const;
export type Role = (typeof ROLES)[number];
export const ROLE_LABEL: Record<Role, string> = { ep: 'EP', partner: 'Partner', aux: 'Aux' };
/** Shamir x-coordinate of each role's share. */
export const ROLE_PARTY: Record<Role, 1 | 2 | 3> = { ep: 1, partner: 2, aux: 3 };
