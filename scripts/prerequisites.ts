import { execFileSync } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';

/** One tool pushgate (or its demo) needs, whether it is there, and how to get it. */
export interface Prerequisite {
  name: string;
  ok: boolean;
  /** What was found (a version), or why it does not do. */
  detail: string;
  /** How to install it, shown when it is missing. */
  hint: string;
}

export interface PrerequisiteOptions {
  /** The local control plane is needed: go 1.26+ (etcd 3.6.16 needs it) unless its binaries are already cached. */
  controlPlane: boolean;
  /** scripts/control-plane/build.sh, to ask for the cache folder without building. */
  buildScript: string;
  env?: NodeJS.ProcessEnv;
}

const MIN_NODE_MAJOR = 20;
const MIN_GO = [1, 26] as const;

export function checkPrerequisites(options: PrerequisiteOptions): Prerequisite[] {
  const env = options.env ?? process.env;
  const results: Prerequisite[] = [checkNode()];
  results.push(
    checkTool(
      'git',
      ['--version'],
      env,
      'Debian/Ubuntu: apt-get install git; macOS: xcode-select --install or brew install git',
    ),
  );
  results.push(
    checkTool(
      'redis-server',
      ['--version'],
      env,
      'Debian/Ubuntu: apt-get install redis-server; macOS: brew install redis',
    ),
  );
  if (!options.controlPlane) return results;
  results.push(
    checkTool(
      'openssl',
      ['version'],
      env,
      'Debian/Ubuntu: apt-get install openssl; macOS: brew install openssl',
    ),
  );
  results.push(checkControlPlane(options.buildScript, env));
  return results;
}

function checkNode(): Prerequisite {
  const major = Number(process.versions.node.split('.')[0]);
  return {
    name: 'node',
    ok: major >= MIN_NODE_MAJOR,
    detail: `v${process.versions.node}${major >= MIN_NODE_MAJOR ? '' : ` (needs ${MIN_NODE_MAJOR}+)`}`,
    hint: `install Node.js ${MIN_NODE_MAJOR} or newer (https://nodejs.org, or nvm install ${MIN_NODE_MAJOR})`,
  };
}

function checkTool(name: string, args: string[], env: NodeJS.ProcessEnv, hint: string): Prerequisite {
  const path = findOnPath(name, env);
  if (!path) return { name, ok: false, detail: 'not found on PATH', hint };
  const version = firstLine(run(path, args, env));
  // `redis-server --version` says "Redis server v=7.0.15 sha=... malloc=..."; keep the version.
  return { name, ok: true, detail: /v=(\S+)/.exec(version)?.[1] ?? (version || path), hint };
}

/** Either the binaries are cached (no Go needed) or Go 1.26+ is there to build them. */
function checkControlPlane(buildScript: string, env: NodeJS.ProcessEnv): Prerequisite {
  const hint = 'install Go 1.26 or newer (https://go.dev/dl/) to build kube-apiserver and etcd once';
  const cacheDir = cachedControlPlane(buildScript, env);
  if (cacheDir) return { name: 'control plane', ok: true, detail: `cached in ${cacheDir}`, hint };
  const go =
    findOnPath('go', env) ?? (isExecutable('/usr/local/go/bin/go') ? '/usr/local/go/bin/go' : undefined);
  if (!go) return { name: 'go', ok: false, detail: 'not found (and no cached control plane)', hint };
  const version = run(go, ['version'], env);
  const match = /go(\d+)\.(\d+)/.exec(version);
  const ok =
    match !== null &&
    (Number(match[1]) > MIN_GO[0] || (Number(match[1]) === MIN_GO[0] && Number(match[2]) >= MIN_GO[1]));
  return {
    name: 'go',
    ok,
    detail: `${firstLine(version) || go}${ok ? ' (builds the control plane on first use)' : ` (needs ${MIN_GO.join('.')}+)`}`,
    hint,
  };
}

/** The folder holding the built kube-apiserver and etcd, as build.sh decides; undefined when they must be built. */
export function cachedControlPlane(
  buildScript: string,
  env: NodeJS.ProcessEnv = process.env,
): string | undefined {
  const cacheDir = firstLine(run('bash', [buildScript, '--print'], env));
  if (!cacheDir) return undefined;
  const built = isExecutable(join(cacheDir, 'kube-apiserver')) && isExecutable(join(cacheDir, 'etcd'));
  return built ? cacheDir : undefined;
}

export function findOnPath(command: string, env: NodeJS.ProcessEnv = process.env): string | undefined {
  for (const dir of (env.PATH ?? '').split(delimiter)) {
    if (dir !== '' && isExecutable(join(dir, command))) return join(dir, command);
  }
  return undefined;
}

function isExecutable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

function run(command: string, args: string[], env: NodeJS.ProcessEnv): string {
  try {
    return execFileSync(command, args, {
      env,
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
      timeout: 10_000,
    });
  } catch {
    return '';
  }
}

function firstLine(text: string): string {
  return text.trim().split('\n')[0]?.trim() ?? '';
}
