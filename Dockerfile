# syntax=docker/dockerfile:1
# podgate: build with dev dependencies, run the compiled JavaScript on a
# distroless Node 24 image with production dependencies only, as non-root.

FROM node:24-bookworm-slim AS build
WORKDIR /src
COPY package.json package-lock.json ./
# No install scripts: the `node` devDependency would fetch a second Node; this image has Node 24.
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN node node_modules/typescript/bin/tsc -p tsconfig.build.json

FROM node:24-bookworm-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund

FROM gcr.io/distroless/nodejs24-debian12:nonroot
WORKDIR /app
ENV NODE_ENV=production
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /src/dist ./dist
COPY package.json ./
# The sample policy is the default --config; the schema is what `podgate schema` prints.
COPY manifests/base/podgate.yaml ./manifests/base/podgate.yaml
COPY manifests/base/webhooks.yaml ./manifests/base/webhooks.yaml
COPY schema ./schema
USER 65532:65532
EXPOSE 8443
# node runs the server directly: no npm in the process tree, signals reach podgate.
ENTRYPOINT ["/nodejs/bin/node", "dist/cli/main.js"]
CMD ["serve", "--offline"]
