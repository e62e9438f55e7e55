# syntax=docker/dockerfile:1
# One image for every pushgate process: `serve` (the default), `worker`, `check`... (`start`
# too, with REDIS_URL: the image has no redis-server of its own to embed).
#
#   docker build -t pushgate .
#   docker run --rm -p 8080:8080 -e REDIS_URL=redis://redis:6379 -v $PWD/config:/etc/pushgate:ro pushgate
#   docker run --rm -e REDIS_URL=redis://redis:6379 -v $PWD/config:/etc/pushgate:ro pushgate worker

# The base of both stages: Node.js 24 LTS on Debian 12 (bookworm), slim. Node 24 is supported
# until 2028-04-30; Node 22, which this image ran before, ends on 2027-04-30. package.json
# `engines` stays ">=20": CI runs the tests on this major and on the machine's Node.js.
# A tag moves when it is rebuilt: for a reproducible build, pin the digest you tested,
#   docker buildx imagetools inspect node:24-bookworm-slim      # prints Digest: sha256:...
#   docker build --build-arg NODE_IMAGE=node:24-bookworm-slim@sha256:<digest> -t pushgate .
# (or write the digest into this default), and let Renovate/Dependabot propose new digests.
ARG NODE_IMAGE=node:24-bookworm-slim

# ---- build: compile TypeScript, then drop the dev dependencies -----------------------
FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
# Everything .dockerignore lets through: sources, tsconfig*, config/ (folders that may be
# empty in a clone, like bench/, need no COPY line of their own this way).
COPY . .
# Only what the image runs: src/ and workers/ (dist/src/cli.js and what it imports). `npm run
# build` would also compile bench/ and scripts/, and bench/ imports test/helpers, which
# .dockerignore keeps out of the context: tsc would fail on it.
RUN echo '{"extends": "./tsconfig.build.json", "include": ["src", "workers"]}' > tsconfig.image.json \
 && npx tsc -p tsconfig.image.json
RUN npm prune --omit=dev

# ---- runtime --------------------------------------------------------------------------
FROM ${NODE_IMAGE}
# git: the worker fetches environment repositories with the git CLI.
# openssh-client: ssh:// repo URLs (git only recommends it, and recommends are not installed).
# ca-certificates: HTTPS clones and the GitHub/GitLab APIs.
# tini: PID 1 (see ENTRYPOINT).
RUN apt-get update \
 && apt-get install -y --no-install-recommends git openssh-client ca-certificates tini \
 && rm -rf /var/lib/apt/lists/*

# Young generation per role: 2 MiB keeps a worker's memory low through a large deploy (its
# garbage is short-lived); the receiver sets 32 MiB (receiver-deployment.yaml, compose), which
# takes GC off its webhook path. The default here suits `worker` and `start`.
ENV NODE_ENV=production \
    NODE_OPTIONS=--max-semi-space-size=2 \
    PUSHGATE_CONFIG=/etc/pushgate/pushgate.yaml \
    PUSHGATE_CACHE_DIR=/var/cache/pushgate/git \
    PORT=8080 \
    HOME=/tmp

WORKDIR /app
COPY --from=build /app/package.json /app/package-lock.json ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
# The default configuration; mount your own at /etc/pushgate/pushgate.yaml.
COPY config/pushgate.yaml /etc/pushgate/pushgate.yaml

# The image's `node` user (uid 1000). Numeric, so Kubernetes runAsNonRoot can verify it.
RUN mkdir -p /var/cache/pushgate/git && chown -R 1000:1000 /var/cache/pushgate
USER 1000:1000

EXPOSE 8080
# No curl in slim images: node asks /healthz itself. A worker-only container has no HTTP
# server; override or disable the check there (docker-compose.yml does).
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.PORT||8080)+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]

# tini as PID 1: it forwards SIGTERM/SIGINT to node (which stops gracefully) and reaps
# orphans. pushgate kills a whole git process group on a timeout or size limit; git's helpers
# (git-remote-https, index-pack) are then re-parented to PID 1, and node as PID 1 would leave
# them as zombies until the pod's PID limit runs out.
ENTRYPOINT ["/usr/bin/tini", "--", "node", "dist/src/cli.js"]
CMD ["serve"]
