/**
 * `ucl partition create|list|show|delete` and `ucl user create|list|show|delete|change-pwd|reset-pwd`,
 * in the original's shapes (`-p`, `-w`, `-s`, `-n`, `-d`, `--role`, `--user`).
 */
import type { Command } from 'commander';
import { usageError } from '../errors.js';
import { type CredentialOpts, type UclContext, call, confirm, credentials, printJson, seg, withCredentials } from './ucl-session.js';

interface PartitionView {
  index: number;
  name: string;
  fipsRequired: boolean;
  maxFailedLogins: number;
  createdAt: string;
  keys: number;
}

interface UserView {
  name: string;
  partition: string;
  role: string;
  locked: boolean;
  failedLogins: number;
  createdAt: string;
}

const ROLES = ['so', 'user', 'auditor'];

function positiveInt(v: string, flag: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1 || n > 100) throw usageError(`${flag} takes a whole number from 1 to 100, not "${v}"`);
  return n;
}

export function registerAccountCommands(program: Command, ctx: UclContext): void {
  const partition = program.command('partition').description('partitions (tenants)');

  withCredentials(
    partition
      .command('create')
      .description('create a partition and its so user (as the root SO)')
      .requiredOption('-p, --partition <name>', 'name of the new partition')
      .requiredOption('-s, --so-password <password>', 'password of the new partition’s so user (at least 8 characters)')
      .option('--fips-req', 'allow only FIPS-approved key types and algorithms in it')
      .option('--max-failed-logins <n>', 'failed logins before a user is locked (default 5)'),
    { partitionFlag: false },
  ).action(async (o: CredentialOpts & { partition: string; soPassword: string; fipsReq?: boolean; maxFailedLogins?: string }) => {
    const creds = await credentials({ user: o.user, password: o.password }, { partition: 'root' });
    const body = {
      name: o.partition,
      soPassword: o.soPassword,
      ...(o.fipsReq ? { fipsRequired: true } : {}),
      ...(o.maxFailedLogins !== undefined ? { maxFailedLogins: positiveInt(o.maxFailedLogins, '--max-failed-logins') } : {}),
    };
    const p = await call<PartitionView>(ctx, creds, 'POST', '/api/v1/partitions', body);
    if (ctx.json()) printJson(ctx, p);
    else ctx.print(`Partition ${p.index}: ${p.name} created${p.fipsRequired ? ' (FIPS-approved algorithms only)' : ''}`);
  });

  withCredentials(partition.command('list').description('list the partitions you may see (index = PKCS#11 slot)')).action(async (o: CredentialOpts) => {
    const r = await call<{ partitions: PartitionView[] }>(ctx, await credentials(o), 'GET', '/api/v1/partitions');
    if (ctx.json()) printJson(ctx, r.partitions);
    else for (const p of r.partitions) ctx.print(`Partition ${p.index}: ${p.name}`);
  });

  withCredentials(partition.command('show').description('show one partition as JSON').requiredOption('-n, --name <name>', 'partition')).action(
    async (o: CredentialOpts & { name: string }) => {
      printJson(ctx, await call<PartitionView>(ctx, await credentials(o), 'GET', `/api/v1/partitions/${seg(o.name)}`));
    },
  );

  withCredentials(
    partition
      .command('delete')
      .description('delete a partition and its users (as the root SO); refused while it holds keys unless --force')
      .requiredOption('-p, --partition <name>', 'partition to delete')
      .option('--force', 'delete it even though it holds keys (the keys are destroyed)')
      .option('-y, --yes', 'do not ask for confirmation'),
    { partitionFlag: false },
  ).action(async (o: CredentialOpts & { partition: string; force?: boolean; yes?: boolean }) => {
    const creds = await credentials({ user: o.user, password: o.password }, { partition: 'root' });
    await confirm(`Delete partition ${o.partition}${o.force ? ' and every key in it' : ''}?`, o.yes);
    const r = await call<{ deleted: string; keysDeleted: number }>(ctx, creds, 'DELETE', `/api/v1/partitions/${seg(o.partition)}${o.force ? '?force=true' : ''}`);
    if (ctx.json()) printJson(ctx, r);
    else ctx.print(`Partition ${r.deleted} deleted${r.keysDeleted ? ` with ${r.keysDeleted} key${r.keysDeleted === 1 ? '' : 's'}` : ''}`);
  });

  const user = program.command('user').description('users of a partition');

  withCredentials(
    user
      .command('create')
      .description('create a user (as an SO of the partition, or the root SO)')
      .requiredOption('-n, --name <user>', 'name of the new user')
      .requiredOption('-d, --new-password <password>', 'its password (at least 8 characters)')
      .option('--role <role>', `${ROLES.join(', ')} (default user)`, 'user'),
  ).action(async (o: CredentialOpts & { name: string; newPassword: string; role: string }) => {
    if (!ROLES.includes(o.role)) throw usageError(`--role ${o.role} is not a role`, `use one of ${ROLES.join(', ')}`);
    const creds = await credentials(o);
    const target = o.partition ?? creds.partition;
    const u = await call<UserView>(ctx, creds, 'POST', `/api/v1/partitions/${seg(target)}/users`, { name: o.name, password: o.newPassword, role: o.role });
    if (ctx.json()) printJson(ctx, u);
    else ctx.print(`User ${u.name}@${u.partition} created (role ${u.role})`);
  });

  withCredentials(user.command('list').description('list the users of the partition')).action(async (o: CredentialOpts) => {
    const creds = await credentials(o);
    const r = await call<{ users: UserView[] }>(ctx, creds, 'GET', `/api/v1/partitions/${seg(o.partition ?? creds.partition)}/users`);
    if (ctx.json()) {
      printJson(ctx, r.users);
      return;
    }
    ctx.print(`Partition ${o.partition ?? creds.partition}: ${r.users.length} user${r.users.length === 1 ? '' : 's'}`);
    for (const u of r.users) ctx.print(`  ${u.name.padEnd(16)} ${u.role.padEnd(8)} ${u.locked ? 'LOCKED' : 'active'}`);
  });

  withCredentials(user.command('show').description('show a user as JSON (default: yourself)').option('-n, --name <user>', 'user to show')).action(
    async (o: CredentialOpts & { name?: string }) => {
      const creds = await credentials(o);
      printJson(ctx, await call<UserView>(ctx, creds, 'GET', `/api/v1/partitions/${seg(o.partition ?? creds.partition)}/users/${seg(o.name ?? creds.user)}`));
    },
  );

  withCredentials(
    user
      .command('delete')
      .description('delete a user (as an SO)')
      .requiredOption('-n, --name <user>', 'user to delete')
      .option('-y, --yes', 'do not ask for confirmation'),
  ).action(async (o: CredentialOpts & { name: string; yes?: boolean }) => {
    const creds = await credentials(o);
    const target = o.partition ?? creds.partition;
    await confirm(`Delete user ${o.name}@${target}?`, o.yes);
    const r = await call<{ deleted: string }>(ctx, creds, 'DELETE', `/api/v1/partitions/${seg(target)}/users/${seg(o.name)}`);
    if (ctx.json()) printJson(ctx, r);
    else ctx.print(`User ${r.deleted} deleted`);
  });

  withCredentials(
    user
      .command('change-pwd')
      .description('change your own password (-w is the old one)')
      .requiredOption('-d, --new-password <password>', 'the new password (at least 8 characters)'),
  ).action(async (o: CredentialOpts & { newPassword: string }) => {
    const creds = await credentials(o);
    const r = await call<{ changed: string }>(ctx, creds, 'POST', '/api/v1/me/password', { oldPassword: creds.password, newPassword: o.newPassword });
    if (ctx.json()) printJson(ctx, r);
    else ctx.print(`Password of ${r.changed} changed`);
  });

  withCredentials(
    user
      .command('reset-pwd')
      .description('set a user’s password and unlock it (as an SO; -w is the SO’s password)')
      .requiredOption('-n, --name <user>', 'user whose password is reset')
      .requiredOption('-d, --new-password <password>', 'the new password (at least 8 characters)'),
  ).action(async (o: CredentialOpts & { name: string; newPassword: string }) => {
    const creds = await credentials(o);
    const target = o.partition ?? creds.partition;
    const r = await call<{ reset: string }>(ctx, creds, 'POST', `/api/v1/partitions/${seg(target)}/users/${seg(o.name)}/reset-password`, { password: o.newPassword });
    if (ctx.json()) printJson(ctx, r);
    else ctx.print(`Password of ${r.reset} reset; the user is unlocked`);
  });
}
