# backup-operator: one image with the operator and wal-g, the default image of
# the chart's Deployment and of every Job the operator starts (run-job).
#
#   docker build -t backup-operator:0.1.0 .        # or: podman build ...
#
# wal-g is downloaded from its GitHub release, pinned by version and sha256:
# a build whose download does not match WALG_SHA256 fails. Air-gapped, put a
# wal-g binary in the build context under dist/ and name it:
#   docker build --build-arg WALG_FILE=dist/wal-g \
#                --build-arg WALG_LABEL="wal-g v3.0.8 (from our mirror)" -t backup-operator .
# The image's label backup.si.dev/wal-g says which wal-g it carries; this
# project's CI builds it with its wal-g stand-in (tools/walg-standin), and
# the label says so.
#
# Stages: Debian 12 with the packages of scripts/setup.sh builds the binary;
# a slim Debian 12 runtime carries only its shared libraries, PostgreSQL 15's
# pg_isready and wal-g. It runs as 65532:65532 and writes nothing outside
# /tmp (Debian's other world-writable directories, /var/tmp and /run/lock,
# are closed), so it runs with a read-only root filesystem and an emptyDir
# at /tmp.

FROM debian:12 AS build
RUN apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      build-essential cmake ninja-build pkg-config ca-certificates ccache \
      libcpprest-dev libboost-dev libboost-system-dev nlohmann-json3-dev libyaml-cpp-dev libssl-dev \
      prometheus-cpp-dev libspdlog-dev libfmt-dev libcli11-dev libhowardhinnant-date-dev tzdata \
      libarchive-dev libpq-dev libsodium-dev postgresql-client-15 \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# Only what the build reads (see .dockerignore), so an edit to the tests or
# the docs does not rebuild the binary.
COPY CMakeLists.txt ./
COPY src src
COPY controller controller
COPY tools tools
COPY bench bench
# ccache in a build cache mount: a rebuild compiles only what changed.
RUN --mount=type=cache,target=/root/.cache/ccache \
    cmake -S . -B /build -G Ninja -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF >/dev/null \
 && cmake --build /build --target backup-operator \
 && strip /build/backup-operator

FROM debian:12-slim AS walg
ARG WALG_VERSION=v3.0.8
ARG WALG_ASSET=wal-g-pg-20.04-amd64
ARG WALG_SHA256=8a0ca72ff3aa10d5a288cdb3e5b2a2e7bc6f8b4ffcf7b3046d718cfeee99a7e7
# A mirror may serve the same file; the sha256 still decides.
ARG WALG_URL=https://github.com/wal-g/wal-g/releases/download/${WALG_VERSION}/${WALG_ASSET}.tar.gz
ARG WALG_FILE=
ARG WALG_LABEL=
# With no WALG_FILE this copies the Dockerfile itself, unused: COPY cannot be
# conditional, the RUN below is.
COPY ${WALG_FILE:-Dockerfile} /tmp/wal-g.local
RUN set -eu; \
    if [ -n "$WALG_FILE" ]; then \
      [ -n "$WALG_LABEL" ] || { echo "WALG_FILE=$WALG_FILE needs WALG_LABEL saying which wal-g it is" >&2; exit 1; }; \
      install -m 0755 /tmp/wal-g.local /usr/local/bin/wal-g; \
    else \
      apt-get update -qq; \
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends ca-certificates curl >/dev/null; \
      curl -fsSL -o /tmp/wal-g.tar.gz "$WALG_URL"; \
      echo "${WALG_SHA256}  /tmp/wal-g.tar.gz" | sha256sum -c - \
        || { echo "$WALG_URL does not match WALG_SHA256=$WALG_SHA256: refusing it" >&2; exit 1; }; \
      tar -xzf /tmp/wal-g.tar.gz -C /tmp; \
      install -m 0755 "/tmp/${WALG_ASSET}" /usr/local/bin/wal-g; \
    fi; \
    rm -f /tmp/wal-g.local /tmp/wal-g.tar.gz

FROM debian:12-slim
ARG WALG_VERSION=v3.0.8
ARG WALG_ASSET=wal-g-pg-20.04-amd64
ARG WALG_SHA256=8a0ca72ff3aa10d5a288cdb3e5b2a2e7bc6f8b4ffcf7b3046d718cfeee99a7e7
ARG WALG_LABEL=
RUN apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      ca-certificates tzdata libcpprest2.10 libyaml-cpp0.7 libssl3 libprometheus-cpp-core1.0 \
      libprometheus-cpp-pull1.0 libcivetweb1 zlib1g libspdlog1.10 libfmt9 libdate-tz3 libboost-system1.74.0 libarchive13 libpq5 \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/* /var/log/apt /var/log/dpkg.log \
 && chmod 0755 /var/tmp /run/lock
COPY --from=build /build/backup-operator /usr/local/bin/backup-operator
COPY --from=walg /usr/local/bin/wal-g /usr/local/bin/wal-g
# pg_isready alone (run-job validate-database-answers): it needs only libpq,
# where the whole postgresql-client-15 package would bring Perl (60 MB).
COPY --from=build /usr/lib/postgresql/15/bin/pg_isready /usr/local/bin/pg_isready
LABEL org.opencontainers.image.title="backup-operator" \
      org.opencontainers.image.description="Kubernetes operator for trustworthy self-hosted Supabase backups (WAL-G)" \
      org.opencontainers.image.version="0.1.0" \
      backup.si.dev/wal-g="${WALG_LABEL:-wal-g ${WALG_VERSION} (${WALG_ASSET}.tar.gz sha256 ${WALG_SHA256})}"
# Non-root and numeric (a kubelet checks runAsNonRoot against a numeric user).
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/backup-operator"]
