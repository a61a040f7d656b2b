/** Backup and restore figures for 10,000 keys (goal: backup <= 10 s, restore to serving <= 60 s); see backup.ts. */
import { backupSuite } from './backup.js';

export const suite = backupSuite('backup-10k', 10_000);
