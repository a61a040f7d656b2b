/** Imported public keys' parsing, where the API has always taken it from (the family: keys/imported-public-keys.ts). */
export { importPublicKey, publicMaterial, publicOnly } from './keys/imported-public-keys.js';
