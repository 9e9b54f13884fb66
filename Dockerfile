# Build stage: release binary only.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY config ./config
COPY openapi ./openapi
RUN cargo build --release --locked --bin snapvault

# Runtime stage: a small Debian with a non-root user.
FROM debian:bookworm-slim
RUN useradd --system --uid 10001 --home-dir /data snapvault \
    && mkdir -p /data /etc/snapvault \
    && chown snapvault /data
COPY --from=build /src/target/release/snapvault /usr/local/bin/snapvault
COPY config/snapvault.toml /etc/snapvault/snapvault.toml
USER snapvault
VOLUME ["/data"]
EXPOSE 9200
ENV SNAPVAULT_DATA_DIR=/data \
    SNAPVAULT_CONFIG=/etc/snapvault/snapvault.toml \
    SNAPVAULT_LISTEN=0.0.0.0:9200
HEALTHCHECK --interval=15s --timeout=5s --retries=3 \
    CMD ["/usr/local/bin/snapvault", "healthcheck", "--addr", "127.0.0.1:9200"]
ENTRYPOINT ["/usr/local/bin/snapvault"]
CMD ["serve", "--listen", "0.0.0.0:9200", "--data-dir", "/data"]
