# Stampede's image: a static binary on scratch, running as a non-root user, data in /data.
#   docker build -t stampede .
#   docker run -p 61613:61613 -p 8161:8161 -v stampede-data:/data stampede
# Configuration: STAMPEDE__SECTION__KEY environment variables, or a broker.toml mounted and
# named with `--config` (docs/behaviour.md). `serve --ephemeral` for a throwaway test broker.
# docker/Dockerfile.prebuilt is the same runtime around a binary built outside Docker (CI, and
# machines without a registry); tests/docker checks that the two stay the same.

ARG RUST_IMAGE=rust:1.95-bookworm
FROM ${RUST_IMAGE} AS build
WORKDIR /src
# Dependencies first, in their own layer: a source change does not rebuild them.
COPY Cargo.toml Cargo.lock ./
COPY crates crates
COPY tests tests
ENV RUSTFLAGS="-C target-feature=+crt-static"
RUN cargo build --release --locked --target x86_64-unknown-linux-gnu --bin stampede \
 && mkdir -p /out/data \
 && strip -o /out/stampede target/x86_64-unknown-linux-gnu/release/stampede

# --- runtime (identical in docker/Dockerfile.prebuilt) ---
FROM scratch
COPY --from=build /out/stampede /stampede
COPY --from=build --chown=10001:10001 /out/data /data
USER 10001:10001
ENV STAMPEDE__STORAGE__DATA_DIR=/data
VOLUME ["/data"]
EXPOSE 61613 61614 8161
HEALTHCHECK --interval=5s --timeout=3s --start-period=5s --retries=3 CMD ["/stampede", "health"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["/stampede"]
CMD ["serve"]
