import path from 'node:path';
import { z } from 'zod';
import { parseDurationMs, parseSizeBytes } from './units.js';

/**
 * A quantity written as text with a unit or as a plain number (`5m`, `5mb`, 300), parsed to a
 * number; `example` says what one looks like. A refinement after it still runs on a value it
 * refused (z.NEVER): those check numbers only.
 */
function quantity(parse: (value: string | number) => number | undefined, example: string) {
  return z
    .union([z.string(), z.number()], { errorMap: () => ({ message: `must be ${example}` }) })
    .transform((value, ctx) => {
      const parsed = parse(value);
      if (parsed === undefined) {
        ctx.addIssue({ code: z.ZodIssueCode.custom, message: `"${value}" is not ${example}` });
        return z.NEVER;
      }
      return parsed;
    });
}

const duration = quantity(parseDurationMs, 'a duration like 30s, 5m or 0');
const size = quantity(parseSizeBytes, 'a size like 512kb or 5mb');

/**
 * `${VAR}` expands to text, so `port: ${PORT}` or `prune: ${PRUNE}` arrive as strings: a number
 * or boolean field also takes the string form of one. Only these fields convert; a string field
 * keeps `"123"` as it is.
 */
const fromText = (parse: (text: string) => unknown) => (value: unknown) =>
  typeof value === 'string' ? parse(value.trim()) : value;
const integerText = fromText((text) => (/^-?\d+$/.test(text) ? Number(text) : text));
const booleanText = fromText((text) => (text === 'true' ? true : text === 'false' ? false : text));
const boolean = z.preprocess(booleanText, z.boolean({ invalid_type_error: 'must be true or false' }));

/** DNS-1123 label: environment and cluster names end up in label values, Redis keys and URLs. */
const name = z
  .string()
  .regex(/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/, 'must be a lowercase DNS label (a-z, 0-9, -)');

const relativePath = z
  .string()
  .refine(
    (p) => !p.startsWith('/') && !p.split('/').includes('..'),
    'must be a path inside the repository (no leading / and no ..)',
  );

/** git check-ref-format's rules for a branch: what git would refuse to fetch, or read as a pattern. */
function isBranchName(branch: string): boolean {
  if (branch.startsWith('-') || branch === '@' || branch.endsWith('.')) return false;
  if (branch.includes('..') || branch.includes('@{')) return false;
  if (/[\s~^:?*[\\]/.test(branch)) return false;
  if ([...branch].some((char) => char.charCodeAt(0) < 0x20 || char.charCodeAt(0) === 0x7f)) return false;
  return branch
    .split('/')
    .every((component) => component !== '' && !component.startsWith('.') && !component.endsWith('.lock'));
}

const branchName = z
  .string()
  .min(1, 'must not be empty')
  .refine(
    (branch) => !branch.startsWith('refs/'),
    'must be a branch name without refs/heads/ (env/production)',
  )
  // Empty is said above, once.
  .refine((branch) => branch === '' || isBranchName(branch), 'is not a valid git branch name');

const PORT_RANGE = 'the port must be a number from 1 to 65535';

/**
 * What is wrong with a Redis URL, as the connection (ioredis, WHATWG URL) would find it only
 * at start. Never quotes the URL: it may hold a password.
 */
function redisUrlProblem(url: string): string | undefined {
  if (!/^rediss?:\/\//.test(url)) return 'must start with redis:// or rediss://';
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    // The authority after any user:password@, to tell a bad port from anything else.
    const hostPort = /^rediss?:\/\/(?:[^/?#]*@)?([^/?#]*)/.exec(url)?.[1] ?? '';
    const port = /^(?:\[[^\]]*\]|[^:]*):(.*)$/.exec(hostPort)?.[1];
    const encoded = 'a / ? or # in the password must be percent-encoded';
    if (port !== undefined && port !== '') return `is not a valid URL: ${PORT_RANGE} (and ${encoded})`;
    return `is not a valid URL (redis://[user:password@]host:port[/db]; ${encoded})`;
  }
  if (parsed.port === '0') return PORT_RANGE;
  if (!/^(\/\d*)?$/.test(parsed.pathname)) return 'the path must be a database number (/0, /1...) or nothing';
  return undefined;
}

const redisUrl = z.string().superRefine((url, ctx) => {
  const problem = redisUrlProblem(url);
  if (problem) ctx.addIssue({ code: z.ZodIssueCode.custom, message: problem });
});

export const serverSchema = z
  .object({
    port: z
      .preprocess(
        integerText,
        z.number({ invalid_type_error: 'must be a port number' }).int().min(0).max(65535),
      )
      .default(8080),
    host: z
      .string()
      // An address, not a URL or host:port (IPv6 literals hold colons of their own).
      .refine((host) => !/^[^:]*:\d*$/.test(host) && !host.includes('/'), {
        message:
          'must be an address to listen on (0.0.0.0, 127.0.0.1, ::), without a port or scheme: the port is server.port',
      })
      .default('0.0.0.0'),
    bodyLimit: size.default('5mb'),
    /** Base of the status URLs handed out in webhook answers and commit statuses. */
    publicUrl: z.string().url().optional(),
  })
  .strict();

/** `redis.cluster: true` and no `redis.url`: what every command that connects to Redis refuses. */
export const REDIS_CLUSTER_NEEDS_URL =
  'needs redis.url (a node of the cluster): the private redis-server of pushgate start is not a cluster';

export const redisSchema = z
  .object({
    url: redisUrl.optional(),
    prefix: z
      .string()
      .regex(/^[A-Za-z0-9_.-]+$/, 'must be letters, digits, _ . or -')
      .default('pushgate'),
    /** A Redis Cluster: `url` names one of its nodes, the others are discovered from it. */
    cluster: boolean.default(false),
  })
  .strict()
  .superRefine((redis, ctx) => {
    // Without a URL: see REDIS_CLUSTER_NEEDS_URL, checked by the loader, which knows why it is unset.
    if (!redis.cluster || !redis.url) return;
    // A Redis Cluster has only database 0.
    if (!/^rediss?:\/\/[^/]*\/?(0)?(\?.*)?$/.test(redis.url)) {
      ctx.addIssue({
        code: z.ZodIssueCode.custom,
        path: ['url'],
        message: 'a Redis Cluster has only database 0: remove the database number from the URL',
      });
    }
  });

export const clusterSchema = z
  .object({
    name,
    kubeconfig: z.string().optional(),
    context: z.string().optional(),
  })
  .strict();

export const environmentSchema = z
  .object({
    name,
    repo: z
      .object({
        provider: z.enum(['github', 'gitlab']),
        name: z.string().regex(/^[^\s/]+(\/[^\s/]+)+$/, 'must be owner/name (GitLab: group/subgroup/name)'),
        url: z.string().min(1, 'must not be empty'),
      })
      .strict(),
    branch: branchName,
    path: relativePath.default('.'),
    cluster: name,
    namespace: name.default('default'),
    prune: boolean.default(true),
    /** Lets a deploy of zero objects prune everything the environment had; off so an emptied folder is not a wipe by accident. */
    allowEmpty: boolean.default(false),
    allow: z
      .object({
        namespaces: z.array(z.string().min(1, 'must not be empty')).default(['*']),
        clusterScoped: boolean.default(false),
      })
      .strict()
      .default({}),
    healthTimeout: duration.default('5m'),
    // Each run is a full deploy (fetch, dry-run, apply, health): below a second is a typo.
    reconcileInterval: duration
      .refine(
        (ms) => typeof ms !== 'number' || ms === 0 || ms >= 1_000,
        'must be 0 (off) or at least 1s: each re-sync is a full deploy',
      )
      .default('10m'),
  })
  .strict()
  .superRefine((environment, ctx) => {
    // GitHub has no nested groups: a third segment would post every status to a 404.
    if (environment.repo.provider === 'github' && environment.repo.name.split('/').length !== 2)
      ctx.addIssue({
        code: z.ZodIssueCode.custom,
        path: ['repo', 'name'],
        message: 'must be owner/name for provider github (group/subgroup/name is GitLab only)',
      });
  });

export const providersSchema = z
  .object({
    github: z
      .object({ apiUrl: z.string().url().default('https://api.github.com') })
      .strict()
      .default({}),
    gitlab: z
      .object({ url: z.string().url().default('https://gitlab.com') })
      .strict()
      .default({}),
  })
  .strict()
  .default({});

export const configSchema = z
  .object({
    server: serverSchema.default({}),
    redis: redisSchema.default({}),
    providers: providersSchema,
    clusters: z.array(clusterSchema).default([]),
    environments: z.array(environmentSchema).default([]),
  })
  .strict()
  .superRefine((config, ctx) => {
    const clusterNames = new Set<string>();
    config.clusters.forEach((cluster, index) => {
      if (clusterNames.has(cluster.name)) {
        ctx.addIssue({
          code: z.ZodIssueCode.custom,
          path: ['clusters', index, 'name'],
          message: `duplicate cluster "${cluster.name}"`,
        });
      }
      clusterNames.add(cluster.name);
    });
    const environmentNames = new Set<string>();
    // Two environments deploying one folder of one branch to one place each claim the other's
    // objects: one push, two jobs, and whichever runs second fails ("managed by environment …").
    const targets = new Map<string, string>();
    config.environments.forEach((environment, index) => {
      const target = JSON.stringify([
        sameRepositoryKey(environment.repo.url),
        environment.branch,
        path.posix.normalize(environment.path).replace(/(.)\/+$/, '$1'),
        environment.cluster,
        environment.namespace,
      ]);
      const twin = targets.get(target);
      if (twin !== undefined) {
        ctx.addIssue({
          code: z.ZodIssueCode.custom,
          path: ['environments', index],
          message: `deploys the same repository, branch and path to the same cluster and namespace as environment "${twin}": each would claim the other's objects`,
        });
      }
      targets.set(target, environment.name);
      if (environmentNames.has(environment.name)) {
        ctx.addIssue({
          code: z.ZodIssueCode.custom,
          path: ['environments', index, 'name'],
          message: `duplicate environment "${environment.name}"`,
        });
      }
      environmentNames.add(environment.name);
      if (!clusterNames.has(environment.cluster)) {
        ctx.addIssue({
          code: z.ZodIssueCode.custom,
          path: ['environments', index, 'cluster'],
          message: `cluster "${environment.cluster}" is not defined under clusters`,
        });
      }
    });
  });

export type Config = z.output<typeof configSchema>;
export type ServerConfig = Config['server'];
export type ClusterConfig = z.output<typeof clusterSchema>;
export type EnvironmentConfig = z.output<typeof environmentSchema>;
export type Provider = EnvironmentConfig['repo']['provider'];

/**
 * One repository however its URL is written: by https or ssh (scp-like `git@host:path` too),
 * the host in any case, with or without credentials, a trailing `/` or `.git`
 * (`https://github.com/acme/env.git`, `git@GitHub.com:acme/env` are one repository).
 */
export function sameRepositoryKey(url: string): string {
  const trimmed = (text: string): string =>
    text
      .replace(/\/+$/, '')
      .replace(/\.git$/, '')
      .replace(/^\/+/, '');
  const scpLike = /^(?:[^@/]+@)?([^/:]+):(?!\/\/)(.*)$/.exec(url);
  if (scpLike) return `${scpLike[1]!.toLowerCase()}/${trimmed(scpLike[2]!)}`;
  try {
    const parsed = new URL(url);
    if (parsed.protocol === 'file:') return `file:${trimmed(parsed.pathname)}`;
    return `${parsed.hostname.toLowerCase()}/${trimmed(parsed.pathname)}`;
  } catch {
    return trimmed(url);
  }
}
