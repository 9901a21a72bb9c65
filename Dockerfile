# syntax=docker/dockerfile:1
# One image for every Alluvium process: master, worker, proxy, operator, CSI driver, `fs` jobs.
#
#   docker build -t alluvium/alluvium:0.1.0 .
#
# The binary links Debian 12's librocksdb (7.8) instead of compiling RocksDB, so both stages are
# Debian bookworm: librocksdb-dev, clang and libclang-dev to build, librocksdb7.8 to run.

FROM rust:1-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends clang libclang-dev librocksdb-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# .cargo/config.toml points ROCKSDB_LIB_DIR at the amd64 multiarch dir; derive it for the build
# machine's architecture instead (an explicit environment variable wins over [env]).
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    export ROCKSDB_LIB_DIR="/usr/lib/$(gcc -dumpmachine)" \
 && cargo build --release --locked -p alluvium-cli --bin alluvium \
 && cp target/release/alluvium /usr/local/bin/alluvium

FROM debian:bookworm-slim
# fuse3: fusermount3 for FUSE mounts (CSI node plugin, `alluvium fuse`); tini reaps children and
# forwards signals so processes shut down cleanly.
RUN apt-get update \
 && apt-get install -y --no-install-recommends librocksdb7.8 fuse3 ca-certificates tini \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --gid 1000 alluvium \
 && useradd --uid 1000 --gid 1000 --create-home --home-dir /home/alluvium --shell /usr/sbin/nologin alluvium \
 && echo user_allow_other >> /etc/fuse.conf
COPY --from=build /usr/local/bin/alluvium /usr/local/bin/alluvium
# Non-root by default (operator, master, proxy, jobs). The worker (hostPath tiers) and the CSI
# node plugin (mounts) run as root through their pod securityContext.
USER 1000:1000
WORKDIR /home/alluvium
ENTRYPOINT ["/usr/bin/tini", "--", "/usr/local/bin/alluvium"]
CMD ["--help"]
