import { execFileSync, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

/**
 * No Docker engine here, so the image's build stage is replayed by hand: the files
 * .dockerignore lets into the context, the dependencies `npm ci` installed (linked, never
 * pruned), then the stage's RUN commands, then the image's ENTRYPOINT.
 */
const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const DOCKERFILE = readFileSync(join(ROOT, 'Dockerfile'), 'utf8');

interface IgnoreRule {
  pattern: RegExp;
  negate: boolean;
}

/** .dockerignore as Docker reads it: paths from the context root, `*`, `?`, `**`, `!` exceptions, last match wins. */
function readDockerignore(): IgnoreRule[] {
  return readFileSync(join(ROOT, '.dockerignore'), 'utf8')
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '' && !line.startsWith('#'))
    .map((line) => {
      const negate = line.startsWith('!');
      const glob = (negate ? line.slice(1) : line).replace(/^\/+/, '').replace(/\/+$/, '');
      let source = '';
      for (let i = 0; i < glob.length; i++) {
        const char = glob[i]!;
        if (glob.startsWith('**/', i)) {
          source += '(?:.*/)?';
          i += 2;
        } else if (glob.startsWith('**', i)) {
          source += '.*';
          i += 1;
        } else if (char === '*') source += '[^/]*';
        else if (char === '?') source += '[^/]';
        else source += char.replace(/[.+^${}()|[\]\\]/g, '\\$&');
      }
      return { pattern: new RegExp(`^${source}$`), negate };
    });
}

/** A file is left out when it, or a folder above it, matches the last rule that matches. */
function isIgnored(file: string, rules: readonly IgnoreRule[]): boolean {
  const parts = file.split('/');
  const candidates = parts.map((_, index) => parts.slice(0, index + 1).join('/'));
  let ignored = false;
  for (const rule of rules) {
    if (candidates.some((candidate) => rule.pattern.test(candidate))) ignored = !rule.negate;
  }
  return ignored;
}

/** The build stage's RUN commands, continuation lines joined. */
function buildStageRuns(): string[] {
  const stages = DOCKERFILE.replace(/\\\n/g, ' ').split(/^FROM .*$/m);
  const build = stages[1] ?? '';
  return [...build.matchAll(/^RUN (.*)$/gm)].map((match) => match[1]!.trim());
}

/** What runs in the build stage besides installing and pruning dependencies (which would touch the linked node_modules). */
function compileCommands(): string[] {
  return buildStageRuns()
    .flatMap((run) => run.split('&&').map((part) => part.trim()))
    .filter((part) => part !== '' && !/\bnpm (ci|prune|install)\b/.test(part));
}

let context: string;
let rules: IgnoreRule[];

beforeAll(() => {
  rules = readDockerignore();
  context = mkdtempSync(join(tmpdir(), 'pushgate-docker-context-'));
  const files = execFileSync('git', ['ls-files', '--cached', '--others', '--exclude-standard', '-z'], {
    cwd: ROOT,
    encoding: 'utf8',
  })
    .split('\0')
    .filter((file) => file !== '' && existsSync(join(ROOT, file)));
  for (const file of files.filter((candidate) => !isIgnored(candidate, rules))) {
    mkdirSync(dirname(join(context, file)), { recursive: true });
    cpSync(join(ROOT, file), join(context, file));
  }
  symlinkSync(join(ROOT, 'node_modules'), join(context, 'node_modules'), 'dir');
});

afterAll(() => {
  if (context) rmSync(context, { recursive: true, force: true });
});

describe('the Dockerfile, replayed on the context .dockerignore lets through', () => {
  it('keeps the compose secrets file and the test folder out of the build context', () => {
    expect(isIgnored('pushgate.env', rules)).toBe(true);
    expect(isIgnored('pushgate-receiver.env', rules)).toBe(true);
    expect(isIgnored('pushgate-worker.env', rules)).toBe(true);
    expect(isIgnored('.env', rules)).toBe(true);
    expect(isIgnored('test/helpers/control-plane.ts', rules)).toBe(true);
    expect(isIgnored('src/cli.ts', rules)).toBe(false);
  });

  it('keeps logs at any depth and whatever sits in config/ beside the default configuration out', () => {
    expect(isIgnored('npm-debug.log', rules)).toBe(true);
    expect(isIgnored('bench/results/run.log', rules)).toBe(true);
    expect(isIgnored('config/prod', rules)).toBe(true);
    expect(isIgnored('config/prod.yaml', rules)).toBe(true);
    expect(isIgnored('config/pushgate.yaml', rules)).toBe(false);
  });

  it('finds every COPY source of the context in it', () => {
    const sources = [...DOCKERFILE.replace(/\\\n/g, ' ').matchAll(/^COPY (?!--from)(.*)$/gm)].flatMap(
      (match) => match[1]!.trim().split(/\s+/).slice(0, -1),
    );
    expect(sources.length).toBeGreaterThan(0);
    for (const source of sources) {
      if (source === '.') continue;
      expect({ source, inContext: existsSync(join(context, source)) }).toEqual({ source, inContext: true });
    }
  });

  it('compiles in the build stage, and the ENTRYPOINT runs the package bin with the image default config', () => {
    const commands = compileCommands();
    expect(commands.length).toBeGreaterThan(0);
    for (const command of commands) {
      const run = spawnSync('sh', ['-c', command], { cwd: context, encoding: 'utf8' });
      expect({ command, status: run.status, output: run.stdout + run.stderr }).toMatchObject({ status: 0 });
    }

    const entrypoint = /^ENTRYPOINT (\[.*\])$/m.exec(DOCKERFILE)?.[1];
    expect(entrypoint).toBeDefined();
    // tini as PID 1 (installed from Debian in the runtime stage), then the package bin.
    const [init, separator, program, script] = JSON.parse(entrypoint!) as string[];
    expect([init, separator]).toEqual(['/usr/bin/tini', '--']);
    const runtimeStage = DOCKERFILE.replace(/\\\n/g, ' ').split(/^FROM .*$/m)[2] ?? '';
    expect(runtimeStage).toMatch(/^RUN .*apt-get install [^\n]*\btini\b/m);
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
      bin: Record<string, string>;
    };
    expect(program).toBe('node');
    expect(script).toBe(pkg.bin.pushgate);

    const check = spawnSync(process.execPath, [script!, 'check', '--config', 'config/pushgate.yaml'], {
      cwd: context,
      encoding: 'utf8',
      env: { PATH: process.env.PATH, LOG_LEVEL: 'silent' },
    });
    expect({ status: check.status, output: check.stdout + check.stderr }).toMatchObject({ status: 0 });
    expect(check.stdout).toContain('config/pushgate.yaml: valid');
  }, 240_000);
});
