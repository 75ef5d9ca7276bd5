# syntax=docker/dockerfile:1
# An APIX gateway node. Configuration comes from the environment (docs/configuration.md); see
# docker-compose.yml for Redis + PostgreSQL + two nodes behind a load balancer (docs/deployment.md).

FROM node:20-bookworm-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
COPY packages/sdk/package.json packages/sdk/package.json
COPY scripts/prisma-generate.sh scripts/prisma-generate.sh
# Production dependencies only. The postinstall step sees no Prisma CLI and keeps the committed
# client in src/generated/prisma; tsx (which runs the TypeScript sources) brings esbuild along.
RUN npm ci --omit=dev --no-audit --no-fund

FROM node:20-bookworm-slim
WORKDIR /app
ENV NODE_ENV=production \
    APIX_HOST=0.0.0.0 \
    APIX_PORT=8080 \
    APIX_DATA_DIR=/var/lib/apix
COPY --from=deps /app/node_modules node_modules
COPY package.json package-lock.json tsconfig.json ./
COPY bin bin
COPY src src
COPY prisma prisma
# The SDK sources: the workspace link node_modules/@apix/sdk points here, and GET /sdk/apix.js bundles them.
COPY packages/sdk packages/sdk
# The example page served at /examples/feed/.
COPY examples/feed examples/feed
RUN mkdir -p /var/lib/apix && chown node:node /var/lib/apix
USER node
VOLUME /var/lib/apix
EXPOSE 8080
# Liveness. Readiness (dependencies reachable, not draining) is GET /readyz: point the load balancer at it.
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.APIX_PORT || 8080) + '/healthz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
# SIGTERM drains: clients are told to reconnect elsewhere (close 1001) for up to APIX_DRAIN_TIMEOUT_MS.
STOPSIGNAL SIGTERM
CMD ["node", "--import", "tsx", "src/cli/main.ts", "serve"]
