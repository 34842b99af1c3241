# syntax=docker/dockerfile:1
# One image for the four services; the command chooses which one runs:
#   docker run m3dio:dev bun auth.ts   (gateway.ts by default; converter.ts, notifier.ts,
#   db/migrate.ts for the one-shot migration job).
# Stages: base (Bun + ffmpeg + yt-dlp) → build (all dependencies and the whole tree: the test
# suite runs here, `docker compose --profile test run --rm test`) and deps
# (production dependencies only) → runtime (the image that is deployed).
ARG BUN_VERSION=1.4.5
# yt-dlp, for links to video pages (converter/pages.ts): a release from PyPI, pinned. Sites
# change often and yt-dlp follows: raise this to the latest release and rebuild (README
# "Links to video pages"); the converter's /health/ready names the version it runs.
ARG YT_DLP_VERSION=2026.10.26

FROM oven/bun:${BUN_VERSION}-slim AS base
# ffmpeg/ffprobe from Debian: the converter runs them, the test suite makes its media with them.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ffmpeg \
 && rm -rf /var/lib/apt/lists/*
# yt-dlp in a virtualenv of its own (Debian's yt-dlp is years behind the sites), owned by
# root: the services run it, never change it. Plain `yt-dlp`, without the optional extras
# (curl_cffi, websockets, a JS runtime): every request it makes is plain HTTP(S) through
# the converter's proxy.
ARG YT_DLP_VERSION
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && python3 -m venv /opt/yt-dlp \
 && /opt/yt-dlp/bin/pip install --no-cache-dir --disable-pip-version-check "yt-dlp==${YT_DLP_VERSION}" \
 && ln -s /opt/yt-dlp/bin/yt-dlp /usr/local/bin/yt-dlp \
 && yt-dlp --version
WORKDIR /app
# Bun's transpiler cache writes under $HOME; the services run with a read-only root
# filesystem in Kubernetes, so leave it off (start-up costs a few milliseconds more).
ENV BUN_RUNTIME_TRANSPILER_CACHE_PATH=0

# ── production dependencies ─────────────────────────────────────────────────
FROM base AS deps
COPY package.json bun.lock bunfig.toml ./
RUN bun install --frozen-lockfile --production --ignore-scripts

# ── build: every dependency and the whole tree, as the image's user ──────────
FROM base AS build
# Chromium for the suite's browser test (test/web.test.ts); only in this stage.
RUN apt-get update \
 && apt-get install -y --no-install-recommends chromium \
 && rm -rf /var/lib/apt/lists/*
# kubectl (with its built-in kustomize) for the suite's checks of k3d/ (test/deploy/k3d.test.ts)
ARG KUBECTL_VERSION=v1.32.4
ARG TARGETARCH
ADD --chmod=755 https://dl.k8s.io/release/${KUBECTL_VERSION}/bin/linux/${TARGETARCH}/kubectl /usr/local/bin/kubectl
RUN chown bun:bun /app
USER bun
COPY --chown=bun:bun package.json bun.lock bunfig.toml ./
RUN bun install --frozen-lockfile
COPY --chown=bun:bun . .
CMD ["bun", "run", "test"]

# ── the source the runtime needs: everything but tests, benchmarks and deploy files
FROM base AS source
COPY . .
RUN rm -rf test bench k3d scripts .github .ci Dockerfile compose.yaml

# ── runtime ─────────────────────────────────────────────────────────────────
FROM base AS runtime
ENV NODE_ENV=production
# Code and dependencies stay owned by root: the service (uid 1000) can read, not change them.
COPY --from=deps /app/node_modules ./node_modules
COPY --from=source /app ./
# The official image's `bun` user (uid 1000, gid 1000), numeric so that Kubernetes'
# runAsNonRoot can verify it.
USER 1000:1000
# auth, gateway, converter (health/metrics), notifier (health/metrics)
EXPOSE 3001 8080 3002 3003
CMD ["bun", "gateway.ts"]
