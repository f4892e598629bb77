# backup-operator: one image with the operator and wal-g, the default
# jobTemplate.image. Build: docker build -t backup-operator .
# Multi-stage: Debian 12 with the same packages as scripts/setup.sh builds;
# a slim Debian 12 runtime carries only the shared libraries and wal-g.

FROM debian:12 AS build
RUN apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      build-essential cmake ninja-build pkg-config ca-certificates \
      libcpprest-dev libboost-dev libboost-system-dev nlohmann-json3-dev libyaml-cpp-dev libssl-dev \
      prometheus-cpp-dev libspdlog-dev libfmt-dev libcli11-dev libhowardhinnant-date-dev tzdata \
      libgtest-dev libgmock-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cmake -S . -B /build -G Ninja -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF \
 && cmake --build /build --target backup-operator \
 && strip /build/backup-operator

FROM debian:12-slim AS walg
ARG WALG_VERSION=v3.0.5
ADD https://github.com/wal-g/wal-g/releases/download/${WALG_VERSION}/wal-g-pg-ubuntu-20.04-amd64.tar.gz /tmp/walg.tgz
RUN tar -xzf /tmp/walg.tgz -C /tmp && install -m 0755 /tmp/wal-g-pg-ubuntu-20.04-amd64 /usr/local/bin/wal-g

FROM debian:12-slim
RUN apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      ca-certificates tzdata postgresql-client-15 libcpprest2.10 libyaml-cpp0.7 libssl3 libprometheus-cpp-core1.0 \
      libprometheus-cpp-pull1.0 libspdlog1.10 libfmt9 libdate-tz3 libboost-system1.74.0 \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /build/backup-operator /usr/local/bin/backup-operator
COPY --from=walg /usr/local/bin/wal-g /usr/local/bin/wal-g
# Non-root, numeric, and nothing written outside /tmp (mount an emptyDir there
# to run with a read-only root filesystem).
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/backup-operator"]
