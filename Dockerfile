# The gateway image: `docker build -t microchat:0.1.0 .` (the tag deploy/k8s/ runs).
#
# Not built on the project's own machines, which have no container engine: the test suite
# checks only that the image starts the way `npm start` does (test/deploy/k8s.test.ts).
# Build it where Docker or Buildah runs, with access to the npm registry.

# 1. Compile server, client SDK and gen/ into dist/ (the `prepare` step of `npm ci`, run
#    directly: the image's Node is already 24, so the `node` package's install script is skipped).
FROM node:24-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts
COPY tsconfig.json tsconfig.build.json ./
COPY scripts/build.mjs scripts/
COPY server server
COPY client client
COPY gen gen
COPY deploy/cassandra/schema.cql deploy/cassandra/
COPY web web
# The web client (Vite), then the server; dist/web/dist becomes the built client itself
# instead of the link to web/dist that the build leaves for a source checkout.
RUN npx vite build web && node scripts/build.mjs && rm dist/web/dist && cp -r web/dist dist/web/dist

# 2. Runtime dependencies only (pure JavaScript: no install scripts needed).
FROM node:24-bookworm-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts

# 3. The image: Node, production node_modules and dist/; no compiler, no sources.
FROM node:24-bookworm-slim
ENV NODE_ENV=production \
    IM_HOST=0.0.0.0 \
    IM_DATA_DIR=/data
WORKDIR /app
COPY package.json ./
COPY --from=deps /app/node_modules node_modules
COPY --from=build /app/dist dist
RUN mkdir -p /data && chown node:node /data
USER node
EXPOSE 8080
# Node runs as PID 1: it handles SIGTERM itself (the drain) and waits for its own workers.
CMD ["node","dist/server/main.js"]
