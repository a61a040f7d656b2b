/** Backup and restore figures for 10,000 keys with EP and Partner on PostgreSQL, beside backup-10k's SQLite ones; see backup.ts. */
import { backupSuite } from './backup.js';

export const suite = backupSuite('backup-10k-postgres', 10_000, 'postgres');
