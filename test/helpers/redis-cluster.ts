import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Redis } from 'ioredis';
import { freePort, waitUntilAnswers } from './redis.js';

const run = promisify(execFile);

export interface ClusterNode {
  port: number;
  url: string;
  /** The node's cluster id (CLUSTER MYID). */
  id: string;
}

export interface TestRedisCluster {
  nodes: ClusterNode[];
  /** The node that serves `key`'s slot now. */
  ownerOf(key: string): Promise<ClusterNode>;
  /** A node that does not serve `key`'s slot: a client given it must find the owner itself. */
  notOwnerOf(key: string): Promise<ClusterNode>;
  /**
   * Moves the slot of `key`, with its keys, to another node as `redis-cli --cluster reshard`
   * does (IMPORTING/MIGRATING, MIGRATE, SETSLOT NODE): clients meet ASK, then MOVED.
   */
  moveSlotOf(key: string): Promise<{ from: ClusterNode; to: ClusterNode }>;
  /** SIGKILLs a node for good (the test's failure). */
  kill(node: ClusterNode): Promise<void>;
  /** SIGSTOPs a node (it holds its connections and answers nothing) until the returned function is called. */
  pause(node: ClusterNode): () => void;
  stop(): Promise<void>;
}

/** A connection to one node only (no cluster client): to read and drive that node itself. */
function nodeClient(node: { port: number }): Redis {
  const client = new Redis({
    host: '127.0.0.1',
    port: node.port,
    maxRetriesPerRequest: 1,
    lazyConnect: false,
  });
  client.on('error', () => undefined);
  return client;
}

async function withNode<T>(node: { port: number }, use: (client: Redis) => Promise<T>): Promise<T> {
  const client = nodeClient(node);
  try {
    return await use(client);
  } finally {
    client.disconnect();
  }
}

/**
 * A real Redis Cluster of three masters (no replicas) on free loopback ports, made with
 * `redis-cli --cluster create`, as an operator makes one.
 */
export async function startRedisCluster(): Promise<TestRedisCluster> {
  // A free port can be taken by another process before its node binds it: new ports then.
  for (let attempt = 1; ; attempt += 1) {
    try {
      return await startClusterOnce();
    } catch (error) {
      if (attempt === 3) throw error;
    }
  }
}

/** `count` distinct free ports (three nodes and their cluster buses). */
async function distinctFreePorts(count: number): Promise<number[]> {
  const ports = new Set<number>();
  while (ports.size < count) ports.add(await freePort());
  return [...ports];
}

async function startClusterOnce(): Promise<TestRedisCluster> {
  const dir = mkdtempSync(join(tmpdir(), 'pushgate-redis-cluster-'));
  const children: ChildProcess[] = [];
  const free = await distinctFreePorts(6);
  const ports = free.slice(0, 3);
  try {
    for (const [index, port] of ports.entries()) {
      // Its own: the default, port + 10000, may be taken or past 65535.
      const busPort = free[3 + index]!;
      children.push(
        spawn(
          'redis-server',
          [
            '--port',
            String(port),
            '--bind',
            '127.0.0.1',
            '--cluster-enabled',
            'yes',
            '--cluster-port',
            String(busPort),
            '--cluster-config-file',
            join(dir, `nodes-${port}.conf`),
            '--cluster-node-timeout',
            '5000',
            // Slots of a node killed for good stay served by the others (as managed clusters do).
            '--cluster-require-full-coverage',
            'no',
            '--save',
            '',
            '--appendonly',
            'no',
            '--dir',
            dir,
          ],
          { stdio: 'ignore' },
        ),
      );
    }
    for (const [index, port] of ports.entries())
      await waitUntilAnswers(port, undefined, 10_000, children[index]);
    await run('redis-cli', [
      '--cluster',
      'create',
      ...ports.map((port) => `127.0.0.1:${port}`),
      '--cluster-replicas',
      '0',
      '--cluster-yes',
    ]);
    for (const port of ports) await untilClusterOk(port);
  } catch (error) {
    for (const child of children) child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
    throw error;
  }
  const nodes: ClusterNode[] = await Promise.all(
    ports.map(async (port) => ({
      port,
      url: `redis://127.0.0.1:${port}`,
      id: await withNode({ port }, (client) => client.call('CLUSTER', 'MYID') as Promise<string>),
    })),
  );

  const ownerOf = async (key: string): Promise<ClusterNode> => {
    const slot = await slotOf(key, nodes[0]!);
    const shards = (await withNode(nodes[0]!, (client) => client.call('CLUSTER', 'SLOTS'))) as [
      number,
      number,
      [string, number, string],
    ][];
    const shard = shards.find(([first, last]) => slot >= first && slot <= last);
    const owner = nodes.find((node) => node.id === shard?.[2][2]);
    if (!owner) throw new Error(`no node serves slot ${slot}`);
    return owner;
  };

  return {
    nodes,
    ownerOf,
    async notOwnerOf(key) {
      const owner = await ownerOf(key);
      return nodes.find((node) => node !== owner)!;
    },
    async moveSlotOf(key) {
      const from = await ownerOf(key);
      const to = nodes.find((node) => node !== from)!;
      const slot = await slotOf(key, from);
      const source = nodeClient(from);
      const target = nodeClient(to);
      try {
        await target.call('CLUSTER', 'SETSLOT', slot, 'IMPORTING', from.id);
        await source.call('CLUSTER', 'SETSLOT', slot, 'MIGRATING', to.id);
        for (;;) {
          const keys = (await source.call('CLUSTER', 'GETKEYSINSLOT', slot, 100)) as string[];
          if (keys.length === 0) break;
          await source.call('MIGRATE', '127.0.0.1', to.port, '', 0, 5_000, 'KEYS', ...keys);
        }
        for (const node of nodes) {
          await withNode(node, (client) => client.call('CLUSTER', 'SETSLOT', slot, 'NODE', to.id));
        }
      } finally {
        source.disconnect();
        target.disconnect();
      }
      return { from, to };
    },
    async kill(node) {
      const child = children[ports.indexOf(node.port)]!;
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      child.kill('SIGKILL');
      await exited;
    },
    pause(node) {
      const child = children[ports.indexOf(node.port)]!;
      child.kill('SIGSTOP');
      return () => child.kill('SIGCONT');
    },
    async stop() {
      await Promise.all(
        children.map(
          (child) =>
            new Promise<void>((resolve) => {
              if (child.exitCode !== null || child.signalCode !== null) return resolve();
              child.once('exit', () => resolve());
              child.kill('SIGTERM');
            }),
        ),
      );
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

async function slotOf(key: string, node: { port: number }): Promise<number> {
  return (await withNode(node, (client) => client.call('CLUSTER', 'KEYSLOT', key))) as number;
}

/** Until the node sees every slot served (CLUSTER INFO cluster_state:ok). */
async function untilClusterOk(port: number): Promise<void> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    const { stdout } = await run('redis-cli', ['-p', String(port), 'cluster', 'info']);
    if (/cluster_state:ok/.test(stdout)) return;
    if (Date.now() > deadline) throw new Error(`Redis Cluster node ${port} not ok: ${stdout}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}
