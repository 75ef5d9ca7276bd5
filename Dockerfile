# syntax=docker/dockerfile:1
# An APIX gateway node. Configuration comes from the environment (docs/configuration.md); see
# docker-compose.yml for Redis + PostgreSQL + two nodes behind a load balancer (docs/deployment.md).

# Build: every dependency, the Prisma client, then dist/ and packages/protocol/dist (tsc + the browser bundles).
FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY . .
RUN npm ci --no-audit --no-fund

# Run-time dependencies only; no install scripts (the Prisma client is compiled into dist/).
FROM node:20-bookworm-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
COPY packages/sdk/package.json packages/sdk/package.json
COPY packages/protocol/package.json packages/protocol/package.json
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund

FROM node:20-bookworm-slim
WORKDIR /app
ENV NODE_ENV=production \
    APIX_HOST=0.0.0.0 \
    APIX_PORT=8080 \
    APIX_DATA_DIR=/var/lib/apix
COPY --from=deps /app/node_modules node_modules
COPY package.json ./
COPY bin bin
COPY --from=build /app/dist dist
# @apix/protocol, which dist/ imports by name: node_modules/@apix/protocol links to packages/protocol.
COPY packages/protocol/package.json packages/protocol/package.json
COPY --from=build /app/packages/protocol/dist packages/protocol/dist
# The SQL migrations `apix serve` applies at start.
COPY prisma/migrations prisma/migrations
RUN mkdir -p /var/lib/apix && chown node:node /var/lib/apix
USER node
VOLUME /var/lib/apix
EXPOSE 8080
# Liveness. Readiness (dependencies reachable, not draining) is GET /readyz: point the load balancer at it.
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.APIX_PORT || 8080) + '/healthz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
# SIGTERM drains: clients are told to reconnect elsewhere (close 1001) for up to APIX_DRAIN_TIMEOUT_MS.
STOPSIGNAL SIGTERM
CMD ["node", "dist/cli/main.js", "serve"]
