/**
 * User routes (`ucl user …`): list, create, show, delete, reset a password (SO; unlocks), change
 * one's own password, and who am I. Rules live in src/service/accounts.ts.
 */
import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { MAX_PASSWORD, NAME_RE, ROLES } from '../service/accounts.js';
import type { UserRole } from '../store/store.js';
import type { Authenticator } from './auth.js';
import type { ApiDoc } from './openapi.js';
import { PartitionParam } from './partitions.js';
import { route } from './routing.js';

const Name = z.string().regex(NAME_RE, "letters, digits, '_', '.', '-' (up to 64)");
const UserParam = z.object({ partition: Name, user: Name }).strict();
const Password = z.string().min(1).max(MAX_PASSWORD);
const CreateBody = z.object({ name: Name, password: Password.describe('at least 8 characters'), role: z.enum(ROLES as [UserRole, ...UserRole[]]) }).strict();
const ResetBody = z.object({ password: Password.describe('the new password (at least 8 characters)') }).strict();
const ChangeBody = z.object({ oldPassword: Password, newPassword: Password.describe('at least 8 characters') }).strict();
const UserOut = z.object({ name: z.string(), partition: z.string(), role: z.enum(ROLES as [UserRole, ...UserRole[]]), locked: z.boolean(), failedLogins: z.number(), createdAt: z.string() });

export interface UserRoutesOptions {
  readonly auth: Authenticator;
  readonly doc: ApiDoc;
}

export const userRoutes: FastifyPluginAsync<UserRoutesOptions> = async (app, { auth, doc }) => {
  const accounts = auth.accounts;
  // Every user route authenticates before its input is validated.
  const guard = (req: FastifyRequest): Promise<unknown> => auth.authenticate(req);
  route(
    app,
    doc,
    { method: 'GET', url: '/api/v1/partitions/:partition/users', summary: 'List the users of a partition', tag: 'users', access: 'so, auditor of the partition; root SO and auditors', params: PartitionParam, ok: { status: 200, description: 'users', schema: z.object({ users: z.array(UserOut) }) }, errors: [403, 404], guard },
    async (req) => {
      const actor = await auth.authenticate(req);
      return { users: await accounts.listUsers(actor, req.params.partition) };
    },
  );
  route(
    app,
    doc,
    { method: 'POST', url: '/api/v1/partitions/:partition/users', summary: 'Create a user', tag: 'users', access: 'so of the partition; root SO', params: PartitionParam, body: CreateBody, ok: { status: 201, description: 'created', schema: UserOut }, errors: [403, 404, 409], guard },
    async (req, reply) => {
      const actor = await auth.authenticate(req);
      return reply.status(201).send(await accounts.createUser(actor, req.params.partition, req.body));
    },
  );
  route(
    app,
    doc,
    { method: 'GET', url: '/api/v1/partitions/:partition/users/:user', summary: 'Show a user', tag: 'users', access: 'the user itself; so, auditor of the partition; root SO and auditors', params: UserParam, ok: { status: 200, description: 'user', schema: UserOut }, errors: [403, 404], guard },
    async (req) => {
      const actor = await auth.authenticate(req);
      const p = req.params;
      return accounts.showUser(actor, p.partition, p.user);
    },
  );
  route(
    app,
    doc,
    { method: 'DELETE', url: '/api/v1/partitions/:partition/users/:user', summary: 'Delete a user (not oneself, not the last SO)', tag: 'users', access: 'so of the partition; root SO', params: UserParam, ok: { status: 200, description: 'deleted', schema: z.object({ deleted: z.string() }) }, errors: [403, 404], guard },
    async (req) => {
      const actor = await auth.authenticate(req);
      const p = req.params;
      // The store deletes the user's bearer tokens with it, for every EP that shares the store.
      await accounts.deleteUser(actor, p.partition, p.user);
      return { deleted: `${p.user}@${p.partition}` };
    },
  );
  route(
    app,
    doc,
    {
      method: 'POST',
      url: '/api/v1/partitions/:partition/users/:user/reset-password',
      summary: 'Set a user’s password and unlock it',
      tag: 'users',
      access: 'so of the partition; root SO',
      params: UserParam,
      body: ResetBody,
      ok: { status: 200, description: 'reset', schema: z.object({ reset: z.string(), locked: z.literal(false) }) },
      errors: [403, 404],
      guard,
    },
    async (req) => {
      const actor = await auth.authenticate(req);
      const p = req.params;
      // The new password ends the user's bearer tokens on every EP (its credential version moves on).
      await accounts.resetPassword(actor, p.partition, p.user, req.body.password);
      return { reset: `${p.user}@${p.partition}`, locked: false as const };
    },
  );
  route(
    app,
    doc,
    { method: 'GET', url: '/api/v1/me', summary: 'Who am I (the authenticated user)', tag: 'users', access: 'any', ok: { status: 200, description: 'principal', schema: z.object({ user: z.string(), partition: z.string(), role: z.string() }) } },
    async (req) => {
      const a = await auth.authenticate(req);
      return { user: a.user, partition: a.partition, role: a.role };
    },
  );
  route(
    app,
    doc,
    { method: 'POST', url: '/api/v1/me/password', summary: 'Change one’s own password (the old one is asked again)', tag: 'users', access: 'any', body: ChangeBody, ok: { status: 200, description: 'changed', schema: z.object({ changed: z.string() }) }, guard },
    async (req) => {
      const a = await auth.authenticate(req);
      const b = req.body;
      await accounts.changePassword(a, b.oldPassword, b.newPassword);
      return { changed: `${a.user}@${a.partition}` };
    },
  );
};
