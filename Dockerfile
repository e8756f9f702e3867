# The Runway host in a container.
#
#   docker build -t runway .
#   docker run -d --name runway -p 8686:8686 -v runway-data:/data \
#     -e RUNWAY_API_TOKENS="ci:admin:$(printf %s "$TOKEN" | sha256sum | cut -d' ' -f1)" \
#     runway
#
# It listens on every interface, so it refuses to start without API tokens
# (RUNWAY_API_TOKENS, or [[server.tokens]] in a config mounted with
# -e RUNWAY_CONFIG=/etc/runway/runway-host.toml). Runs, workflows and
# artifacts live in the /data volume; `docker exec runway runway runs` asks
# the server inside. tests/ops.rs runs this file's runtime stage (its ENV,
# CMD and HEALTHCHECK) against the binary it builds.

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
# The release profile strips symbols (35 MiB, not 212).
RUN cargo build --release --locked -p runway \
 && install -D target/release/runway /out/runway \
 && mkdir -p /out/data

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/runway /usr/local/bin/runway
# Owned by the user the host runs as; a new volume starts as this.
COPY --from=build --chown=65532:65532 /out/data /data
ENV RUNWAY_DATA_DIR=/data RUNWAY_LISTEN=0.0.0.0:8686 RUNWAY_SERVER=http://127.0.0.1:8686
VOLUME /data
EXPOSE 8686
USER 65532:65532
HEALTHCHECK --interval=10s --timeout=6s --start-period=20s --retries=3 CMD ["/usr/local/bin/runway", "ready"]
ENTRYPOINT ["/usr/local/bin/runway"]
CMD ["serve"]
