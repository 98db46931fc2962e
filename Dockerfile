# Myelin in a container: a small final image, run as a non-root user, everything it keeps on
# one volume (/data: the SQLite database, the signing key inside it, and media).
#
#   docker build -t myelin .
#   docker run -p 8008:8008 -v myelin-data:/data -e MYELIN_SERVER_NAME=example.org myelin
#
# Configuration comes from MYELIN_* variables (MYELIN_DATABASE__URL=postgres://... for
# PostgreSQL), or a TOML file named by MYELIN_CONFIG; see the README's Configuration.

FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin myelin

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 991 --home-dir /data --shell /usr/sbin/nologin myelin \
    && mkdir -p /data && chown myelin /data
COPY --from=build /src/target/release/myelin /usr/local/bin/myelin
USER myelin
WORKDIR /data
ENV MYELIN_LISTEN=0.0.0.0:8008 \
    MYELIN_DATABASE__URL=sqlite:///data/myelin.db \
    MYELIN_MEDIA__PATH=/data/media
VOLUME /data
EXPOSE 8008
# No curl in the image: the binary asks itself.
HEALTHCHECK --start-period=5s --interval=15s --timeout=5s \
    CMD ["myelin", "healthcheck"]
STOPSIGNAL SIGTERM
CMD ["myelin", "serve"]
