import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  ExecCredentialSource,
  failureHint,
  type ExecConfig,
  type PluginFailure,
} from '../../../src/kube/exec-credential.js';
import { processAlive } from '../../helpers/process.js';
import { tempDirs } from '../../helpers/temp-dirs.js';

const V1 = 'client.authentication.k8s.io/v1';

/** Each test's folder, removed after it. */
const pluginDir = tempDirs('exec-credential-');

/** A plugin that counts its runs in `dir/runs` and hands out token t<run>, valid for an hour. */
function countingPlugin(dir: string): ExecConfig {
  const script = join(dir, 'plugin.sh');
  writeFileSync(
    script,
    '#!/bin/sh\necho run >> "$(dirname "$0")/runs"\nn=$(grep -c run "$(dirname "$0")/runs")\n' +
      `echo "{\\"apiVersion\\":\\"${V1}\\",\\"kind\\":\\"ExecCredential\\",` +
      `\\"status\\":{\\"token\\":\\"t$n\\",\\"expirationTimestamp\\":\\"${new Date(Date.now() + 3600_000).toISOString()}\\"}}"\n`,
    { mode: 0o755 },
  );
  return { apiVersion: V1, command: script, interactiveMode: 'Never' };
}

describe('ExecCredentialSource', () => {
  it('does not drop a fresh credential for a refusal of an older one', async () => {
    const dir = pluginDir();
    const source = new ExecCredentialSource(countingPlugin(dir), null, process.env);

    const first = await source.get();
    source.forget(first);
    const second = await source.get();
    // A request that left with the first token is refused after the refresh.
    source.forget(first);
    const third = await source.get();

    expect([first.token, second.token, third.token]).toEqual(['t1', 't2', 't2']);
  });

  it('kills the plugin’s whole process group when it does not answer in time', async () => {
    const dir = pluginDir();
    const pidFile = join(dir, 'grandchild');
    // A wrapper whose child hangs, holding the pipes the plugin's answer would come on.
    const exec: ExecConfig = {
      apiVersion: V1,
      command: 'sh',
      args: ['-c', 'sleep 30 & echo $! > "$0"; wait', pidFile],
      interactiveMode: 'Never',
    };
    // Time enough for the wrapper to write its child's pid on a busy machine.
    const source = new ExecCredentialSource(exec, null, process.env, 2_000);

    await expect(source.get()).rejects.toThrow('exec credential plugin "sh" did not answer within 2 s');
    const grandchild = Number(readFileSync(pidFile, 'utf8'));
    const deadline = Date.now() + 5_000;
    while (processAlive(grandchild) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expect(processAlive(grandchild)).toBe(false);
  });

  it('tells a plugin that asks for it the cluster, with a CA file as data and the exec extension', async () => {
    const dir = pluginDir();
    writeFileSync(join(dir, 'ca.pem'), 'CA PEM');
    const exec: ExecConfig = {
      apiVersion: V1,
      command: 'sh',
      args: [
        '-c',
        `printf '%s' "$KUBERNETES_EXEC_INFO" > "$0"; echo '{"apiVersion":"${V1}","kind":"ExecCredential","status":{"token":"t"}}'`,
        join(dir, 'info.json'),
      ],
      interactiveMode: 'Never',
      provideClusterInfo: true,
    };
    const cluster = {
      name: 'c',
      server: 'https://api.example:6443',
      caFile: join(dir, 'ca.pem'),
      skipTLSVerify: false,
      execExtension: { audience: 'pushgate' },
    };

    await new ExecCredentialSource(exec, cluster, process.env).get();

    expect(JSON.parse(readFileSync(join(dir, 'info.json'), 'utf8'))).toEqual({
      apiVersion: V1,
      kind: 'ExecCredential',
      spec: {
        interactive: false,
        cluster: {
          server: 'https://api.example:6443',
          'certificate-authority-data': Buffer.from('CA PEM').toString('base64'),
          config: { audience: 'pushgate' },
        },
      },
    });
  });

  it('keeps the stderr of a failed plugin (set -x and all) out of its error, for the debug log only', async () => {
    const refreshToken = 'rt-4f8a9c2e7b1d6053aa9e';
    const exec: ExecConfig = {
      apiVersion: V1,
      command: 'sh',
      args: [
        '-c',
        `set -x; REFRESH_TOKEN=${refreshToken}; : get-token --refresh-token "$REFRESH_TOKEN"; ` +
          'echo "error: identity provider unreachable" >&2; exit 3',
      ],
      interactiveMode: 'Never',
    };
    const failures: PluginFailure[] = [];
    const source = new ExecCredentialSource(exec, null, process.env, 10_000, (failure) =>
      failures.push(failure),
    );

    const error = await source.get().then(
      () => undefined,
      (e: unknown) => e as Error,
    );

    expect(error?.message).toBe(
      'exec credential plugin "sh" exited with code 3: error: identity provider unreachable',
    );
    expect(failures).toHaveLength(1);
    expect(failures[0]).toMatchObject({ command: 'sh', exitCode: 3 });
    expect(failures[0]?.stderr).toContain(`REFRESH_TOKEN=${refreshToken}`);
  });
});

describe('failureHint', () => {
  it.each([
    ['+ TOKEN=abc\n++ curl -d refresh_token=xyz\n', ''],
    ['error: refresh failed\nREFRESH_TOKEN=abc\n', ': error: refresh failed'],
    [
      'Error: token eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl was revoked',
      ': Error: token … was revoked',
    ],
    [
      'open /var/run/secrets/eks.amazonaws.com/serviceaccount/token: no such file',
      ': open /var/run/secrets/eks.amazonaws.com/serviceaccount/token: no such file',
    ],
    ['plugin failed with --client-secret=s3cr3t', ''],
    [`${'x '.repeat(100)}`, `: ${'x '.repeat(60).slice(0, 119)}…`],
  ])('of %j is %j', (stderr, hint) => {
    expect(failureHint(stderr)).toBe(hint);
  });
});
