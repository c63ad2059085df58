# One image for every role: `pm serve` (all roles, embedded storage) by
# default, or `pm teleferic|authorizer|reader|writer|bootstrap` given as the
# command. See docs/DEPLOYMENT.md.
#
#   docker build -t peer-mountain/pm .
#   docker run --rm -p 8000:8000 -v pm-data:/data peer-mountain/pm
#
# The `builder` stage is also the development image
# (docker-compose-development.yml mounts the source over /src).
#
# The two base images are build arguments, for mirrors and local stand-ins:
# RUST_IMAGE (a Rust toolchain on Debian bookworm) and RUNTIME_IMAGE (Debian
# bookworm with apt). Without any registry, scripts/images.sh builds the
# runtime stage alone, from this file, with a binary built on the host: it
# takes the lines from `FROM ${RUNTIME_IMAGE} AS runtime` on and copies the
# binary from the build context instead of the builder stage.
ARG RUST_IMAGE=rust:1-bookworm
ARG RUNTIME_IMAGE=debian:bookworm-slim

FROM ${RUST_IMAGE} AS builder
WORKDIR /src

# Dependencies first, in their own layer: the manifests and the lock file with
# empty crates, so that editing the sources does not rebuild every dependency.
COPY Cargo.toml Cargo.lock ./
COPY models/Cargo.toml models/
COPY backends/Cargo.toml backends/
COPY http/Cargo.toml http/
COPY authorizer/Cargo.toml authorizer/
COPY writer/Cargo.toml writer/
COPY reader/Cargo.toml reader/
COPY teleferic/Cargo.toml teleferic/
COPY fuzzing/Cargo.toml fuzzing/
RUN set -eux; \
    for crate in models backends http authorizer writer reader teleferic fuzzing; do \
        mkdir -p "$crate/src"; : > "$crate/src/lib.rs"; \
    done; \
    mkdir -p src; : > src/lib.rs; echo 'fn main() {}' > src/main.rs; \
    cargo build --release --locked --bin pm; \
    rm -rf src models/src backends/src http/src authorizer/src writer/src reader/src teleferic/src fuzzing/src

# Then the sources. COPY keeps the files' own modification times, which can be
# older than the placeholder build above: touch them so cargo rebuilds them.
COPY . .
RUN set -eux; \
    find src models/src backends/src http/src authorizer/src writer/src reader/src teleferic/src fuzzing/src -name '*.rs' -exec touch {} +; \
    cargo build --release --locked --bin pm; \
    install -m 0755 target/release/pm /usr/local/bin/pm; \
    /usr/local/bin/pm --version


FROM ${RUNTIME_IMAGE} AS runtime

# ca-certificates for https backends; curl (small) for the health check.
RUN set -eux; \
    apt-get update; \
    apt-get install -y --no-install-recommends ca-certificates curl; \
    rm -rf /var/lib/apt/lists/*; \
    groupadd --system --gid 10001 pm; \
    useradd --system --uid 10001 --gid pm --home-dir /data --no-create-home --shell /usr/sbin/nologin pm; \
    mkdir -p /data; \
    chown pm:pm /data; \
    chmod 0750 /data

COPY --from=builder /usr/local/bin/pm /usr/local/bin/pm
RUN /usr/local/bin/pm --version

# /data holds the embedded database and the node key of `pm serve` (mount a
# volume there); the separate roles over servers keep nothing in it.
USER pm:pm
WORKDIR /
EXPOSE 8000

# Every role serves GET /healthz on its listen port: `PORT` when set (the
# compose files set it), else 8000 (the default command's --listen).
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
    CMD curl -fsS -o /dev/null "http://127.0.0.1:${PORT:-8000}/healthz" || exit 1

ENTRYPOINT ["/usr/local/bin/pm"]
CMD ["serve", "--listen", "0.0.0.0:8000", "--data-dir", "/data"]
